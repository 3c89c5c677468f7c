//! Latency and energy estimates for a board from the instructions a model executes on the
//! emulated core ([`crate::emulator::profile`]).
//!
//! QEMU counts instructions, not cycles, so each class of instruction is weighted by a cycle
//! cost from the core's technical reference manual:
//!
//! - Cortex-M4 (TRM r0p1, table 3-1): loads 2 cycles, but a single load right after a load or
//!   store 1 (the TRM: neighbouring load and store single instructions pipeline their address
//!   and data phases; the plugin tells them apart), stores 1 (the write buffer hides the second
//!   cycle when the next instruction does not stall), multiplies and multiply-accumulates 1 (`MUL`, `MLA`,
//!   `SMLAD`, `SMLABB`, `SMULL`/`SMLAL` are single-cycle on the M4), branches 2 (a taken branch
//!   costs 1 + P with P between 1 and 3 for the pipeline refill; loop branches are mostly
//!   taken), everything else 1; a multi-word transfer 1 more per word beyond its first (the
//!   TRM: `LDM`/`STM` take 1 + N cycles; `LDRD`/`STRD` move two words over the 32-bit bus).
//! - Cortex-M7 (dual-issue, branch prediction; its TRM gives no per-instruction table): loads
//!   and stores 1, multiply-accumulates 1, branches 1, other instructions 0.5 (pairs issue
//!   together), half a cycle per extra word of a multi-word transfer (a 64-bit bus).
//! - Cortex-M0+: not emulated here, so no estimate.
//!
//! Memory wait states are not modelled: the boards' flash accelerators (ST's ART, Nordic's
//! cache) hide them for loop code, less so for weights streamed from flash.

use serde::Serialize;

use crate::boards::{Board, CoreKind};
use crate::emulator::InsnCounts;

/// Cycles per instruction of each class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CycleModel {
    /// Loads.
    pub load: f64,
    /// Single loads right after a load or store.
    pub pipelined_load: f64,
    /// Stores.
    pub store: f64,
    /// Multiplies and multiply-accumulates.
    pub mac: f64,
    /// Branches.
    pub branch: f64,
    /// Everything else.
    pub other: f64,
    /// Each word a multi-word transfer moves beyond its first.
    pub extra_word: f64,
}

impl CycleModel {
    /// The model of `core`, where one exists.
    pub fn of(core: CoreKind) -> Option<Self> {
        match core {
            CoreKind::CortexM4F => Some(CycleModel {
                load: 2.0,
                pipelined_load: 1.0,
                store: 1.0,
                mac: 1.0,
                branch: 2.0,
                other: 1.0,
                extra_word: 1.0,
            }),
            CoreKind::CortexM7 => Some(CycleModel {
                load: 1.0,
                pipelined_load: 1.0,
                store: 1.0,
                mac: 1.0,
                branch: 1.0,
                other: 0.5,
                extra_word: 0.5,
            }),
            CoreKind::CortexM0Plus => None,
        }
    }

    /// Estimated cycles of `counts`.
    pub fn cycles(&self, c: &InsnCounts) -> f64 {
        c.load as f64 * self.load
            + c.pipelined_load as f64 * self.pipelined_load
            + c.store as f64 * self.store
            + c.mac as f64 * self.mac
            + c.branch as f64 * self.branch
            + c.other as f64 * self.other
            + c.extra_words as f64 * self.extra_word
    }
}

/// A latency and energy estimate on one board.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Cycles.
    pub cycles: f64,
    /// Milliseconds at the board's clock.
    pub latency_ms: f64,
    /// Microjoules at the board's active power.
    pub energy_uj: f64,
}

/// The estimate for `counts` (one inference, all operations) on `board`, if its core has a
/// cycle model.
pub fn estimate(counts: &[InsnCounts], board: &Board) -> Option<Estimate> {
    let model = CycleModel::of(board.core)?;
    let cycles: f64 = counts.iter().map(|c| model.cycles(c)).sum();
    let latency_ms = cycles / (f64::from(board.clock_mhz) * 1e3);
    Some(Estimate {
        cycles,
        latency_ms,
        // mW × ms = µJ.
        energy_uj: board.active_mw * latency_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::board;

    #[test]
    fn cycles_weight_each_class() {
        let c = InsnCounts {
            load: 10,
            pipelined_load: 6,
            store: 4,
            mac: 20,
            branch: 3,
            other: 7,
            extra_words: 5,
        };
        let m4 = CycleModel::of(CoreKind::CortexM4F).unwrap();
        assert_eq!(m4.cycles(&c), 20.0 + 6.0 + 4.0 + 20.0 + 6.0 + 7.0 + 5.0);
        let l4 = board("l4r5zi").unwrap();
        let e = estimate(&[c, c], l4).unwrap();
        assert_eq!(e.cycles, 136.0);
        assert!((e.latency_ms - 136.0 / 120_000.0).abs() < 1e-12);
        assert!(estimate(&[c], board("rp2040").unwrap()).is_none());
    }
}
