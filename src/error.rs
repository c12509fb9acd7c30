//! The library's typed error.

use crate::diag::Diagnostics;

/// Everything that can go wrong in incc, as a library user sees it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Parse, name and shape errors in `.incep` sources, all of them, with locations.
    #[error("{0}")]
    Source(Diagnostics),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        message: String,
    },
    /// A weights file does not fit the network, or is corrupt.
    #[error("{path}: {message}")]
    Weights {
        /// The weights file.
        path: String,
        /// What is wrong (missing, unexpected and mis-shaped tensors are all listed).
        message: String,
    },
    /// A `.npy` tensor file is corrupt or not what is needed.
    #[error("{path}: {message}")]
    Npy {
        /// The tensor file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An image file (`incc run --image`) is not a JPEG or PNG that can be decoded.
    #[error("{path}: {message}")]
    Image {
        /// The image file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An input tensor of the wrong shape or length was given.
    #[error("input `{name}` must have shape {expected}, found {found}")]
    InputShape {
        /// The network input.
        name: String,
        /// Its declared shape.
        expected: String,
        /// What was given.
        found: String,
    },
    /// The IR verifier found a broken invariant (a compiler bug).
    #[error("IR verifier failed after `{pass}`:\n  {}", errors.join("\n  "))]
    Verifier {
        /// The pass after which it failed (`lower` for the lowering).
        pass: String,
        /// Every violation.
        errors: Vec<String>,
    },
    /// Code generation failed (an unsupported CPU, or a compiler bug).
    #[error("code generation: {0}")]
    Jit(String),
    /// A network that an export format cannot express.
    #[error("cannot export to {format}: {message}")]
    Export {
        /// The format (`ONNX`).
        format: &'static str,
        /// What cannot be expressed, and where.
        message: String,
    },
    /// A compile profile (`--profile-file`) is not valid YAML or not a profile.
    #[error("{at}: {message}")]
    Profile {
        /// `file:line:column`, or the file alone when the problem has no location.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// Graphviz is missing or failed (`incc graph --format svg|html`).
    #[error("graphviz: {0}")]
    Graphviz(String),
    /// An invalid option or request.
    #[error("{0}")]
    Invalid(String),
}

/// incc's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, e: impl std::fmt::Display) -> Error {
        Error::Io { path: path.as_ref().display().to_string(), message: e.to_string() }
    }
}
