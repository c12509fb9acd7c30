//! The closed set of layer kinds (`conv`, `maxpool`, ...) and the tables keyed by them.
//!
//! A layer's word is converted once ([`LayerKind::parse`]); everything after matches on the
//! enum, so adding a kind makes the compiler point at every table that must learn it.

use std::fmt;

/// A kind of layer: the word a layer statement starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `conv`: a 2-D convolution, optionally with a batch norm and a relu.
    Conv,
    /// `bn`: a batch norm.
    Bn,
    /// `relu`.
    Relu,
    /// `maxpool`.
    MaxPool,
    /// `avgpool`.
    AvgPool,
    /// `gap`: global average pooling.
    Gap,
    /// `lrn`: local response normalisation.
    Lrn,
    /// `dropout` (the identity at inference).
    Dropout,
    /// `flatten`.
    Flatten,
    /// `fc`: a fully connected layer.
    Fc,
    /// `l2norm`: division by the L2 norm along the channels.
    L2Norm,
    /// `softmax` along the channels.
    Softmax,
}

impl LayerKind {
    /// Every layer kind, in the order suggestions and the "layers are" note list them.
    pub const ALL: [LayerKind; 12] = [
        LayerKind::Conv,
        LayerKind::Bn,
        LayerKind::Relu,
        LayerKind::MaxPool,
        LayerKind::AvgPool,
        LayerKind::Gap,
        LayerKind::Lrn,
        LayerKind::Dropout,
        LayerKind::Flatten,
        LayerKind::Fc,
        LayerKind::L2Norm,
        LayerKind::Softmax,
    ];

    /// The kind a layer word names, or `None` if `word` is not a layer.
    pub fn parse(word: &str) -> Option<LayerKind> {
        LayerKind::ALL.into_iter().find(|k| k.name() == word)
    }

    /// The word in the source.
    pub const fn name(self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::Bn => "bn",
            LayerKind::Relu => "relu",
            LayerKind::MaxPool => "maxpool",
            LayerKind::AvgPool => "avgpool",
            LayerKind::Gap => "gap",
            LayerKind::Lrn => "lrn",
            LayerKind::Dropout => "dropout",
            LayerKind::Flatten => "flatten",
            LayerKind::Fc => "fc",
            LayerKind::L2Norm => "l2norm",
            LayerKind::Softmax => "softmax",
        }
    }

    /// The attribute keywords this kind accepts.
    pub fn keywords(self) -> &'static [&'static str] {
        match self {
            LayerKind::Conv => &["stride", "pad", "groups", "bias", "nobias", "bn", "nobn", "eps", "relu", "norelu"],
            LayerKind::MaxPool => &["stride", "pad", "ceil", "floor"],
            LayerKind::AvgPool => &["stride", "pad", "ceil", "floor", "include_pad", "exclude_pad"],
            LayerKind::Bn => &["eps", "relu", "norelu"],
            LayerKind::Fc => &["bias", "nobias", "relu", "norelu"],
            LayerKind::Lrn => &["size", "alpha", "beta", "k"],
            LayerKind::Dropout => &["p"],
            LayerKind::L2Norm => &["eps"],
            LayerKind::Relu | LayerKind::Gap | LayerKind::Flatten | LayerKind::Softmax => &[],
        }
    }

    /// How many positional values the layer takes, `(at least, at most, help)`: the help
    /// completes "`KIND` needs ..." and "`KIND` takes ...".
    pub fn arity(self) -> (usize, usize, &'static str) {
        match self {
            LayerKind::Conv => (2, 2, "`conv CHANNELS KHxKW`, e.g. `conv 64 3x3`"),
            LayerKind::MaxPool | LayerKind::AvgPool => (1, 1, "a window, e.g. `maxpool 3x3 stride 2`"),
            LayerKind::Fc => (1, 1, "`fc FEATURES`, e.g. `fc 1000`"),
            LayerKind::Dropout | LayerKind::Lrn => (0, 1, "at most one value"),
            LayerKind::Bn
            | LayerKind::Relu
            | LayerKind::Gap
            | LayerKind::Flatten
            | LayerKind::L2Norm
            | LayerKind::Softmax => (0, 0, "no values"),
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What attribute words belong to: a layer, or a `residual` block, which is not a layer but
/// takes attributes (`scale`, `relu`) that a `default residual ...` line can also set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttrOwner {
    /// A layer of this kind.
    Layer(LayerKind),
    /// `residual { ... }`.
    Residual,
}

impl AttrOwner {
    /// The owner a word names (a layer kind or `residual`), or `None`.
    pub fn parse(word: &str) -> Option<AttrOwner> {
        match word {
            "residual" => Some(AttrOwner::Residual),
            _ => LayerKind::parse(word).map(AttrOwner::Layer),
        }
    }

    /// The word in the source.
    pub fn name(self) -> &'static str {
        match self {
            AttrOwner::Layer(k) => k.name(),
            AttrOwner::Residual => "residual",
        }
    }

    /// The attribute keywords it accepts.
    pub fn keywords(self) -> &'static [&'static str] {
        match self {
            AttrOwner::Layer(k) => k.keywords(),
            AttrOwner::Residual => &["scale", "relu", "norelu"],
        }
    }
}

impl fmt::Display for AttrOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_from_its_name() {
        for k in LayerKind::ALL {
            assert_eq!(LayerKind::parse(k.name()), Some(k));
            assert_eq!(AttrOwner::parse(k.name()), Some(AttrOwner::Layer(k)));
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(LayerKind::parse("residual"), None);
        assert_eq!(AttrOwner::parse("residual"), Some(AttrOwner::Residual));
        assert_eq!(AttrOwner::parse("concat"), None);
        assert_eq!(LayerKind::parse("Conv"), None);
    }
}
