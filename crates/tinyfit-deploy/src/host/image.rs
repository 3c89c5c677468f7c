//! The padded input image windowed kernels read: the input, shifted to unsigned bytes
//! (`x + 128`), framed by the shifted input zero point so that every tap of every output pixel
//! lands inside and taps need no bounds tests.

use tinyfit_micro::kernels::{Shape, Window};

/// Geometry of a windowed layer's padded image.
#[derive(Debug, Clone, Copy)]
pub(super) struct Padded {
    /// Input shape.
    pub(super) input: Shape,
    /// Window geometry.
    pub(super) window: Window,
    /// Output height and width.
    pub(super) out: (usize, usize),
    /// Image height and width: from the top-left padding to the last tap or input pixel.
    pub(super) size: (usize, usize),
}

impl Padded {
    /// The image of a layer from `input` to `output` through `window`.
    pub(super) fn new(input: Shape, window: &Window, output: Shape) -> Self {
        let reach = |out: usize, stride: usize, k: usize, dilation: usize| {
            (out.max(1) - 1) * stride + (k.max(1) - 1) * dilation + 1
        };
        let size = (
            reach(output.h, window.stride_h, window.kh, window.dilation_h)
                .max(window.pad_top + input.h),
            reach(output.w, window.stride_w, window.kw, window.dilation_w)
                .max(window.pad_left + input.w),
        );
        Padded {
            input,
            window: *window,
            out: (output.h, output.w),
            size,
        }
    }

    /// Bytes of the image.
    pub(super) fn bytes(&self) -> usize {
        self.size.0 * self.size.1 * self.input.c
    }

    /// Offset of each tap (kernel row by row) from its window's first byte in the image.
    pub(super) fn tap_offsets(&self) -> Vec<usize> {
        let (w, c) = (self.window, self.input.c);
        (0..w.kh)
            .flat_map(|ky| {
                (0..w.kw).map(move |kx| (ky * w.dilation_h * self.size.1 + kx * w.dilation_w) * c)
            })
            .collect()
    }

    /// Offset of output pixel `(oy, ox)`'s window in the image.
    pub(super) fn window_offset(&self, oy: usize, ox: usize) -> usize {
        (oy * self.window.stride_h * self.size.1 + ox * self.window.stride_w) * self.input.c
    }
}
