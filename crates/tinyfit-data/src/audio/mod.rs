//! Audio: WAV reading and the MLPerf Tiny keyword-spotting front-end.

mod frontend;
mod wav;

pub use frontend::{Features, FrontEnd};
pub use wav::read_wav_i16;
