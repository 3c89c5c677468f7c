//! Audio: WAV reading, the MLPerf Tiny keyword-spotting front-end, training augmentation.

mod augment;
mod frontend;
mod wav;

pub use augment::{Augment, Augmenter};
pub use frontend::{Features, FrontEnd};
pub use wav::read_wav_i16;
