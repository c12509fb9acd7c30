//! The portable tier: Cranelift's own f32x4 code, for any CPU Cranelift supports (aarch64
//! too). Its convolution tile ([`conv::F32x4Conv`]) is generated inline in each convolution
//! kernel, behind the [`conv::ConvProvider`] interface.

pub mod conv;
