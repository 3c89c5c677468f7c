//! Board profiles: the microcontroller boards tinyfit deploys to, with the limits a model must
//! fit (DESIGN.md's table).

use serde::Serialize;

use crate::emulator::Core;

/// A CPU core family, as far as code generation and emulation care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CoreKind {
    /// Cortex-M7 (DSP extension, FPU).
    #[serde(rename = "Cortex-M7")]
    CortexM7,
    /// Cortex-M4 with FPU (DSP extension).
    #[serde(rename = "Cortex-M4F")]
    CortexM4F,
    /// Cortex-M0+ (Armv6-M: no DSP extension).
    #[serde(rename = "Cortex-M0+")]
    CortexM0Plus,
}

impl std::fmt::Display for CoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CoreKind::CortexM7 => "Cortex-M7",
            CoreKind::CortexM4F => "Cortex-M4F",
            CoreKind::CortexM0Plus => "Cortex-M0+",
        })
    }
}

impl CoreKind {
    /// The QEMU core that runs this family's code, if one does.
    pub fn emulated(self) -> Option<Core> {
        match self {
            CoreKind::CortexM7 => Some(Core::M7),
            CoreKind::CortexM4F => Some(Core::M4),
            CoreKind::CortexM0Plus => None,
        }
    }
}

/// A board's core, clock and memories.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Board {
    /// Short name, as `--board` takes it.
    pub name: &'static str,
    /// Full name.
    pub title: &'static str,
    /// Core.
    pub core: CoreKind,
    /// Core clock in MHz.
    pub clock_mhz: u32,
    /// SRAM bytes.
    pub sram_bytes: usize,
    /// Flash bytes.
    pub flash_bytes: usize,
    /// Typical active power running code at `clock_mhz`, in mW (for energy estimates).
    pub active_mw: f64,
    /// Where `active_mw` comes from.
    pub power_basis: &'static str,
}

/// The supported boards.
pub const BOARDS: [Board; 4] = [
    Board {
        name: "f767zi",
        title: "NUCLEO-F767ZI",
        core: CoreKind::CortexM7,
        clock_mhz: 216,
        sram_bytes: 512 * 1024,
        flash_bytes: 2 * 1024 * 1024,
        active_mw: 337.0,
        power_basis: "about 102 mA run current at 216 MHz × 3.3 V (STM32F767 datasheet, typical)",
    },
    Board {
        name: "l4r5zi",
        title: "NUCLEO-L4R5ZI",
        core: CoreKind::CortexM4F,
        clock_mhz: 120,
        sram_bytes: 640 * 1024,
        flash_bytes: 2 * 1024 * 1024,
        active_mw: 43.6,
        power_basis: "110 µA/MHz × 120 MHz × 3.3 V (STM32L4R5 datasheet, run mode)",
    },
    Board {
        name: "nrf52840",
        title: "nRF52840 (Arduino Nano 33 BLE Sense)",
        core: CoreKind::CortexM4F,
        clock_mhz: 64,
        sram_bytes: 256 * 1024,
        flash_bytes: 1024 * 1024,
        active_mw: 10.0,
        power_basis: "52 µA/MHz × 64 MHz × 3 V (nRF52840 product specification, DC/DC on)",
    },
    Board {
        name: "rp2040",
        title: "RP2040 (Raspberry Pi Pico)",
        core: CoreKind::CortexM0Plus,
        clock_mhz: 133,
        sram_bytes: 264 * 1024,
        flash_bytes: 2 * 1024 * 1024,
        active_mw: 79.0,
        power_basis: "about 24 mA at 133 MHz × 3.3 V (Raspberry Pi Pico datasheet, typical)",
    },
];

/// The board named `name` (its short name or title, any case), or an error listing the boards.
pub fn board(name: &str) -> Result<&'static Board, String> {
    BOARDS
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(name) || b.title.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
            format!(
                "unknown board `{name}`; expected one of {}",
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_are_found_by_short_name_or_title() {
        assert_eq!(board("L4R5ZI").unwrap().clock_mhz, 120);
        assert_eq!(board("nucleo-f767zi").unwrap().name, "f767zi");
        let err = board("esp32").unwrap_err();
        assert!(err.contains("f767zi, l4r5zi, nrf52840, rp2040"), "{err}");
    }
}
