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
    /// A compiler rejected its sources.
    #[error("{tool} failed on {dir}:\n{stderr}")]
    Build {
        /// The compiler.
        tool: &'static str,
        /// The folder of the sources.
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

/// Runs `command` (the tool `tool`, from Debian's `package`) to completion; a tool that cannot
/// be started is [`EmulatorError::Missing`].
fn output_of(
    command: &mut Command,
    tool: &'static str,
    package: &'static str,
) -> Result<std::process::Output, EmulatorError> {
    command.output().map_err(|source| EmulatorError::Missing {
        tool,
        package,
        source,
    })
}

/// Runs the compiler `tool` on the sources in `dir`; its messages are the error if it fails.
fn compile(
    command: &mut Command,
    tool: &'static str,
    package: &'static str,
    dir: &Path,
) -> Result<(), EmulatorError> {
    let out = output_of(command, tool, package)?;
    if !out.status.success() {
        return Err(EmulatorError::Build {
            tool,
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
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
    build_as(dir, core, &[], "model.elf")
}

/// As [`build`], with extra preprocessor definitions, into `dir/name`.
fn build_as(
    dir: &Path,
    core: Core,
    defines: &[&str],
    name: &str,
) -> Result<PathBuf, EmulatorError> {
    let elf = dir.join(name);
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();
    compile(
        Command::new("arm-none-eabi-gcc")
            .args(["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"])
            .args(defines.iter().map(|d| format!("-D{d}")))
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
            .arg(&elf),
        "arm-none-eabi-gcc",
        "gcc-arm-none-eabi and picolibc-arm-none-eabi",
        dir,
    )?;
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
    let dir = scratch_dir()?;
    let result = run_in(&dir, elf, core, inputs, &[], timeout);
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|(outputs, _)| outputs)
}

fn run_in(
    dir: &Path,
    elf: &Path,
    core: Core,
    inputs: &[u8],
    qemu_args: &[String],
    timeout: Duration,
) -> Result<(Vec<u8>, String), EmulatorError> {
    let input_file = dir.join("inputs.bin");
    std::fs::write(&input_file, inputs).map_err(io(&input_file))?;
    let elf = std::path::absolute(elf).map_err(io(elf))?;
    let log = dir.join("console.txt");
    let console = std::fs::File::create(&log).map_err(io(&log))?;
    let mut child = Command::new("qemu-system-arm")
        .args(["-M", core.machine(), "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(qemu_args)
        .arg("-kernel")
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
    Ok((std::fs::read(&outputs).map_err(io(&outputs))?, output))
}

/// Section sizes of a built program, from `arm-none-eabi-size -A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ElfSizes {
    /// Bytes in flash: code, read-only data (the weights) and the initial image of `.data`.
    pub flash: usize,
    /// Bytes of statically allocated RAM: `.data` and `.bss` (the arena, the scratch, the C
    /// library's state); the stack comes on top.
    pub static_ram: usize,
}

/// Measures the flash and static RAM of `elf`.
pub fn elf_sizes(elf: &Path) -> Result<ElfSizes, EmulatorError> {
    let out = output_of(
        Command::new("arm-none-eabi-size")
            .args(["-A", "-d"])
            .arg(elf),
        "arm-none-eabi-size",
        "binutils-arm-none-eabi",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sizes = ElfSizes {
        flash: 0,
        static_ram: 0,
    };
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(size)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(size) = size.parse::<usize>() else {
            continue;
        };
        // picolibc's linker script: code and constants in `.text`/`.rodata`-like sections,
        // initialised data copied from flash, zeroed data in RAM only (the `.stack` and
        // `.heap` reservations are not counted: the stack is measured).
        match name {
            ".text" | ".init" | ".fini" | ".rodata" | ".ARM.exidx" | ".ARM.extab" => {
                sizes.flash += size
            }
            ".data" | ".tdata" => {
                sizes.flash += size;
                sizes.static_ram += size;
            }
            ".bss" | ".tbss" => sizes.static_ram += size,
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

/// A fresh folder for one emulator run (tests run several at once).
fn scratch_dir() -> Result<PathBuf, EmulatorError> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tinyfit-qemu-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Executed instructions of one operation, by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct InsnCounts {
    /// Loads (`LDR*`, `LDM`, `POP` without `pc`), except those below.
    pub load: u64,
    /// Single loads (`LDR`, `LDRB`, `LDRH`, `LDRSB`, `LDRSH`) right after a load or store,
    /// which the Cortex-M4 pipelines into one cycle.
    pub pipelined_load: u64,
    /// Stores (`STR*`, `STM`, `PUSH`).
    pub store: u64,
    /// Multiplies and multiply-accumulates (`MUL`, `MLA`, `SMLAD`, `SMLABB`, `SMULL`...).
    pub mac: u64,
    /// Branches (`B`, `BL`, `BX`, `CBZ`, `POP {..., pc}`...).
    pub branch: u64,
    /// Everything else (ALU, `SXTB16`, `SADD16`, moves, compares).
    pub other: u64,
    /// Words moved by multi-word transfers beyond their first (`LDRD`/`STRD`: one;
    /// `LDM`/`STM`/`PUSH`/`POP` of n registers: n − 1). Not instructions: each costs the
    /// Cortex-M4 a cycle more.
    pub extra_words: u64,
}

impl InsnCounts {
    /// All instructions.
    pub fn total(&self) -> u64 {
        self.load + self.pipelined_load + self.store + self.mac + self.branch + self.other
    }
}

/// The instruction-counting plugin's source (see its header comment).
const PLUGIN_C: &str = include_str!("../c/qemu/insn_classes.c");

/// Folders searched for `qemu-plugin.h`: `$QEMU_PLUGIN_INCLUDE`, then where `.ci/setup` puts the
/// header from Debian's qemu source package.
fn plugin_include_dirs() -> Vec<PathBuf> {
    std::env::var_os("QEMU_PLUGIN_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/local/include/qemu", "/usr/include/qemu"].map(PathBuf::from))
        .collect()
}

/// Builds the instruction-counting plugin for this machine's QEMU; returns the shared object.
pub fn plugin() -> Result<PathBuf, EmulatorError> {
    let include = plugin_include_dirs()
        .into_iter()
        .find(|d| d.join("qemu-plugin.h").is_file())
        .ok_or_else(|| EmulatorError::Missing {
            tool: "qemu-plugin.h",
            package: "the header from Debian's qemu source package into /usr/local/include/qemu",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
    let dir = scratch_dir()?;
    let (source, object) = (dir.join("insn_classes.c"), dir.join("insn_classes.so"));
    std::fs::write(&source, PLUGIN_C).map_err(io(&source))?;
    compile(
        Command::new("cc")
            .args([
                "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
            ])
            .arg("-fvisibility=hidden")
            .arg("-I")
            .arg(&include)
            .arg(&source)
            .arg("-o")
            .arg(&object),
        "cc",
        "build-essential",
        &dir,
    )?;
    Ok(object)
}

/// What one profiled inference measured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Profile {
    /// Executed instructions of each operation, in order.
    pub operations: Vec<InsnCounts>,
    /// Deepest stack use of the whole program (start-up, I/O and the inference), from stack
    /// painting.
    pub stack_bytes: usize,
}

/// Counts the instructions each operation of the package in `dir` executes on `core` for one
/// input, and measures the stack: builds it with `-DTINYFIT_PROFILE` (a marker call before
/// each operation and after the last, a painted stack), runs it under the plugin.
pub fn profile(
    dir: &Path,
    core: Core,
    input: &[u8],
    operations: usize,
    timeout: Duration,
) -> Result<Profile, EmulatorError> {
    let elf = build_as(dir, core, &["TINYFIT_PROFILE"], "model_profile.elf")?;
    let marker = symbol(&elf, "tinyfit_profile_mark")?;
    let plugin = plugin()?;
    let work = scratch_dir()?;
    let counts_file = work.join("counts.txt");
    let arg = format!(
        "{},marker={marker:#x},out={}",
        plugin.display(),
        counts_file.display()
    );
    let result = run_in(&work, &elf, core, input, &["-plugin".into(), arg], timeout).and_then(
        |(_, console)| {
            let counts = std::fs::read_to_string(&counts_file).map_err(io(&counts_file))?;
            Ok((counts, console))
        },
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(plugin.parent().unwrap_or(&work));
    let (text, console) = result?;
    let phases: Vec<InsnCounts> = text
        .lines()
        .map(|line| {
            let v: Vec<u64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match v[..] {
                [load, store, mac, branch, other, pipelined_load, extra_words] => {
                    Some(InsnCounts {
                        load,
                        pipelined_load,
                        store,
                        mac,
                        branch,
                        other,
                        extra_words,
                    })
                }
                _ => None,
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(|| bad_counts(&elf, &text))?;
    // Phase 0 runs up to the first marker, the last after the final one.
    if phases.len() != operations + 2 {
        return Err(bad_counts(&elf, &text));
    }
    let stack_bytes = console
        .lines()
        .find_map(|l| {
            l.strip_prefix("tinyfit: stack high-water mark ")?
                .strip_suffix(" bytes")
        })
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| bad_counts(&elf, &console))?;
    Ok(Profile {
        operations: phases[1..=operations].to_vec(),
        stack_bytes,
    })
}

fn bad_counts(elf: &Path, text: &str) -> EmulatorError {
    EmulatorError::Run {
        elf: elf.to_path_buf(),
        machine: "-",
        what: "the instruction counts do not match the program's operations".into(),
        output: text.chars().take(2000).collect(),
    }
}

/// The address of `name` in `elf`.
fn symbol(elf: &Path, name: &str) -> Result<u64, EmulatorError> {
    let out = output_of(
        Command::new("arm-none-eabi-nm").arg(elf),
        "arm-none-eabi-nm",
        "binutils-arm-none-eabi",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|line| {
            let mut f = line.split_whitespace();
            let (addr, _, sym) = (f.next()?, f.next()?, f.next()?);
            (sym == name).then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .ok_or_else(|| EmulatorError::Run {
            elf: elf.to_path_buf(),
            machine: "-",
            what: format!("no symbol {name}"),
            output: String::new(),
        })
}
