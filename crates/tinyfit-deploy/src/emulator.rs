//! Builds a generated C package for a Cortex-M and runs it in QEMU: the check that the code a
//! board would run computes exactly what the runtime computes.
//!
//! The package is compiled with `arm-none-eabi-gcc` against picolibc with semihosting (its
//! start-up code, and file I/O through the emulator), linked for the MPS2 FPGA images QEMU
//! models (code at 0x0, data at 0x2000_0000, 4 MiB each), and run with
//! `qemu-system-arm -semihosting`; the example `main.c` reads `inputs.bin` and writes
//! `outputs.bin` in the working directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// An emulated core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    /// Cortex-M4 with FPU (QEMU's `mps2-an386`).
    M4,
    /// Cortex-M7 with double-precision FPU (QEMU's `mps2-an500`).
    M7,
}

impl Core {
    fn compiler_flags(self) -> &'static [&'static str] {
        match self {
            Core::M4 => &[
                "-mcpu=cortex-m4",
                "-mthumb",
                "-mfloat-abi=hard",
                "-mfpu=fpv4-sp-d16",
            ],
            Core::M7 => &[
                "-mcpu=cortex-m7",
                "-mthumb",
                "-mfloat-abi=hard",
                "-mfpu=fpv5-d16",
            ],
        }
    }

    fn machine(self) -> &'static str {
        match self {
            Core::M4 => "mps2-an386",
            Core::M7 => "mps2-an500",
        }
    }
}

/// Why building or running on the emulator failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A tool is not installed.
    #[error("{tool} not found ({source}); install {package} (`.ci/setup` does)")]
    Missing {
        /// The command.
        tool: &'static str,
        /// The Debian packages that provide it.
        package: &'static str,
        /// The spawn error.
        source: std::io::Error,
    },
    /// The compiler rejected the package.
    #[error("arm-none-eabi-gcc failed on {dir}:\n{stderr}")]
    Build {
        /// The package folder.
        dir: PathBuf,
        /// The compiler's messages.
        stderr: String,
    },
    /// The program failed or did not finish.
    #[error("{elf} on {machine}: {what}\n{output}")]
    Run {
        /// The program.
        elf: PathBuf,
        /// QEMU's machine.
        machine: &'static str,
        /// What went wrong.
        what: String,
        /// What it printed.
        output: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmulatorError + '_ {
    move |source| EmulatorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Compiles the package in `dir` (every `.c` file) for `core` into `dir/model.elf`, optimised
/// for speed (`-O2`), and returns the ELF's path.
pub fn build(dir: &Path, core: Core) -> Result<PathBuf, EmulatorError> {
    let elf = dir.join("model.elf");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    let out = Command::new("arm-none-eabi-gcc")
        .args(["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"])
        .args(core.compiler_flags())
        .args([
            "--specs=picolibc.specs",
            "--crt0=semihost",
            "--oslib=semihost",
        ])
        .args([
            "-Wl,--defsym=__flash=0x0",
            "-Wl,--defsym=__flash_size=0x400000",
            "-Wl,--defsym=__ram=0x20000000",
            "-Wl,--defsym=__ram_size=0x400000",
            "-Wl,--defsym=__stack_size=0x4000",
        ])
        .args(&sources)
        .arg("-o")
        .arg(&elf)
        .output()
        .map_err(|source| EmulatorError::Missing {
            tool: "arm-none-eabi-gcc",
            package: "gcc-arm-none-eabi and picolibc-arm-none-eabi",
            source,
        })?;
    if !out.status.success() {
        return Err(EmulatorError::Build {
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(elf)
}

/// Runs `elf` on `core` with `inputs` as `inputs.bin` in a scratch folder, and returns the
/// bytes it wrote to `outputs.bin`. Gives up after `timeout`.
pub fn run(
    elf: &Path,
    core: Core,
    inputs: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, EmulatorError> {
    // One folder per call: tests run several emulators at once.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tinyfit-qemu-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let result = run_in(&dir, elf, core, inputs, timeout);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    dir: &Path,
    elf: &Path,
    core: Core,
    inputs: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, EmulatorError> {
    let input_file = dir.join("inputs.bin");
    std::fs::write(&input_file, inputs).map_err(io(&input_file))?;
    let elf = std::path::absolute(elf).map_err(io(elf))?;
    let log = dir.join("console.txt");
    let console = std::fs::File::create(&log).map_err(io(&log))?;
    let mut child = Command::new("qemu-system-arm")
        .args(["-M", core.machine(), "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
        .arg(&elf)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(console.try_clone().map_err(io(&log))?)
        .stderr(console)
        .spawn()
        .map_err(|source| EmulatorError::Missing {
            tool: "qemu-system-arm",
            package: "qemu-system-arm",
            source,
        })?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io(&elf))? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let failure = |what: String| EmulatorError::Run {
        elf: elf.clone(),
        machine: core.machine(),
        what,
        output: output.clone(),
    };
    match status {
        None => return Err(failure(format!("still running after {timeout:?}"))),
        Some(s) if !s.success() => return Err(failure(format!("exited with {s}"))),
        Some(_) => {}
    }
    let outputs = dir.join("outputs.bin");
    std::fs::read(&outputs).map_err(io(&outputs))
}

/// Section sizes of a built program, from `arm-none-eabi-size -A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ElfSizes {
    /// Bytes in flash: code, read-only data (the weights) and the initial image of `.data`.
    pub flash: usize,
    /// Bytes of statically allocated RAM: `.data`, `.bss` (the arena) and the reserved stack.
    pub ram: usize,
}

/// Measures the flash and static RAM of `elf`.
pub fn elf_sizes(elf: &Path) -> Result<ElfSizes, EmulatorError> {
    let out = Command::new("arm-none-eabi-size")
        .args(["-A", "-d"])
        .arg(elf)
        .output()
        .map_err(|source| EmulatorError::Missing {
            tool: "arm-none-eabi-size",
            package: "binutils-arm-none-eabi",
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sizes = ElfSizes { flash: 0, ram: 0 };
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(size)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(size) = size.parse::<usize>() else {
            continue;
        };
        // picolibc's linker script: code and constants in `.text`/`.rodata`-like sections,
        // initialised data copied from flash, zeroed data and the stack in RAM only.
        match name {
            ".text" | ".init" | ".fini" | ".rodata" | ".ARM.exidx" | ".ARM.extab" => {
                sizes.flash += size
            }
            ".data" | ".tdata" => {
                sizes.flash += size;
                sizes.ram += size;
            }
            ".bss" | ".tbss" | ".stack" | ".heap" => sizes.ram += size,
            _ => {}
        }
    }
    if sizes.flash == 0 {
        return Err(EmulatorError::Run {
            elf: elf.to_path_buf(),
            machine: "-",
            what: "arm-none-eabi-size listed no sections".into(),
            output: text.into_owned(),
        });
    }
    Ok(sizes)
}
