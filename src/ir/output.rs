//! [`Output`] and [`Outputs`]: what a run of a network returns, on any engine.

use super::Shape;
use std::ops::Deref;

/// One output of a network: its name (as the `.incep` file's `output` line gives it), its
/// shape and its values (row-major, NCHW for 4-d outputs).
#[derive(Clone, Debug, PartialEq)]
pub struct Output<T = f32> {
    /// The output's name.
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// Its values, `shape.numel()` of them.
    pub data: Vec<T>,
}

/// The outputs of one run, in the order the network (or `outputs(...)`) names them. Derefs to
/// a slice; [`Outputs::get`] looks one up by name.
///
/// ```
/// # use incc::ir::{Output, Outputs, Shape};
/// let outs = Outputs::from(vec![Output { name: "logits".into(), shape: Shape(vec![1, 2]), data: vec![0.5f32, 1.5] }]);
/// assert_eq!(outs["logits"].data, [0.5, 1.5]);
/// assert_eq!(outs[0].shape.0, [1, 2]);
/// assert!(outs.get("aux1").is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs<T = f32>(Vec<Output<T>>);

impl<T> Outputs<T> {
    /// The output called `name`, if the run produced one.
    pub fn get(&self, name: &str) -> Option<&Output<T>> {
        self.0.iter().find(|o| o.name == name)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|o| o.name.as_str())
    }

    /// The outputs as a vector, in order.
    pub fn into_vec(self) -> Vec<Output<T>> {
        self.0
    }
}

impl<T> From<Vec<Output<T>>> for Outputs<T> {
    fn from(v: Vec<Output<T>>) -> Self {
        Outputs(v)
    }
}

impl<T> FromIterator<Output<T>> for Outputs<T> {
    fn from_iter<I: IntoIterator<Item = Output<T>>>(iter: I) -> Self {
        Outputs(iter.into_iter().collect())
    }
}

impl<T> Deref for Outputs<T> {
    type Target = [Output<T>];
    fn deref(&self) -> &[Output<T>] {
        &self.0
    }
}

impl<T> IntoIterator for Outputs<T> {
    type Item = Output<T>;
    type IntoIter = std::vec::IntoIter<Output<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Outputs<T> {
    type Item = &'a Output<T>;
    type IntoIter = std::slice::Iter<'a, Output<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// `outputs["logits"]`: the output of that name.
///
/// # Panics
/// When there is none; use [`Outputs::get`] where the name may be absent.
impl<T> std::ops::Index<&str> for Outputs<T> {
    type Output = Output<T>;
    fn index(&self, name: &str) -> &Output<T> {
        match self.get(name) {
            Some(o) => o,
            None => panic!("no output `{name}`; the outputs are {:?}", self.names().collect::<Vec<_>>()),
        }
    }
}

/// `outputs[i]`: the `i`-th output, in order.
impl<T> std::ops::Index<usize> for Outputs<T> {
    type Output = Output<T>;
    fn index(&self, i: usize) -> &Output<T> {
        &self.0[i]
    }
}
