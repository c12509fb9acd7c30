//! The subset of ONNX's protobuf schema that incc writes, as `prost` messages.
//!
//! Transcribed by hand from `onnx/onnx.proto` of the ONNX repository (`syntax = "proto2"`,
//! package `onnx`; every field number checked against both the IR-version-7 schema and ONNX
//! 1.23's, of IR version 14: numbers are never reused), so no `protoc` runs at build time. Only the
//! fields incc writes or its tests read are declared; a decoder skips the others, as protobuf
//! requires. Every field keeps its official name, number and wire type:
//!
//! - proto2 `optional` scalars are `Option`s, so a value is written whenever it is set, even
//!   when it equals the type's default (`ceil_mode: 0`), as a proto2 writer does;
//! - proto2 `repeated` numbers are unpacked unless the schema says `[packed = true]`
//!   (`TensorProto.float_data` and `int64_data` are packed; `dims`, `ints` and `floats` not);
//! - a `oneof` (`TypeProto.value`, `TensorShapeProto.Dimension.value`) is written as its
//!   members, each an optional field with its own number: the wire format of a oneof is
//!   exactly that, and incc sets at most one member.

/// `ModelProto`: the top-level message of a `.onnx` file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// `optional int64 ir_version = 1`.
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// `optional string producer_name = 2`.
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    /// `optional string producer_version = 3`.
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    /// `optional string doc_string = 6`.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// `optional GraphProto graph = 7`.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// `repeated OperatorSetIdProto opset_import = 8`.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

/// `OperatorSetIdProto`: an operator set a model uses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// `optional string domain = 1` (empty: the default `ai.onnx` domain).
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// `optional int64 version = 2`.
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `GraphProto`: nodes in topological order, initializers, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// `repeated NodeProto node = 1`.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// `optional string name = 2`.
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// `repeated TensorProto initializer = 5`.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// `optional string doc_string = 10`.
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    /// `repeated ValueInfoProto input = 11`.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// `repeated ValueInfoProto output = 12`.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// `repeated string input = 1` (an empty name is an omitted optional input).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// `repeated string output = 2`.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// `optional string name = 3`.
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    /// `optional string op_type = 4`.
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    /// `repeated AttributeProto attribute = 5`.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// `optional string doc_string = 6`.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// `optional string domain = 7`.
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
}

/// `AttributeProto`: a named attribute; `type` says which value field is set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// `optional string name = 1`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional float f = 2`.
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// `optional int64 i = 3`.
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// `optional bytes s = 4`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// `repeated float floats = 7`.
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// `repeated int64 ints = 8`.
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// `optional AttributeType type = 20` (an enum: encoded as its `int32` number).
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
}

/// Numbers of `AttributeProto.AttributeType` (those incc writes).
pub mod attribute_type {
    /// `FLOAT = 1`.
    pub const FLOAT: i32 = 1;
    /// `INT = 2`.
    pub const INT: i32 = 2;
    /// `INTS = 7`.
    pub const INTS: i32 = 7;
}

/// `TensorProto`: a constant tensor (an initializer).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `repeated int64 dims = 1`.
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// `optional int32 data_type = 2` (a [`data_type`] number).
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// `repeated float float_data = 4 [packed = true]`.
    #[prost(float, repeated, packed = "true", tag = "4")]
    pub float_data: Vec<f32>,
    /// `repeated int64 int64_data = 7 [packed = true]`.
    #[prost(int64, repeated, packed = "true", tag = "7")]
    pub int64_data: Vec<i64>,
    /// `optional string name = 8`.
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// `optional bytes raw_data = 9`: the elements, fixed-width little-endian, row-major.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

/// Numbers of `TensorProto.DataType` (those incc writes).
pub mod data_type {
    /// `FLOAT = 1` (IEEE 754 binary32).
    pub const FLOAT: i32 = 1;
    /// `INT64 = 7`.
    pub const INT64: i32 = 7;
}

/// `ValueInfoProto`: the name and type of a graph input or output.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// `optional string name = 1`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `optional TypeProto type = 2`.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto`; of its `oneof value`, only `tensor_type = 1` is declared.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// `Tensor tensor_type = 1` (a member of `oneof value`).
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

/// `TypeProto.Tensor`: element type and shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProtoTensor {
    /// `optional int32 elem_type = 1` (a [`data_type`] number).
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    /// `optional TensorShapeProto shape = 2`.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// `repeated Dimension dim = 1`.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a fixed size or a named (symbolic) one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// `int64 dim_value = 1` (a member of `oneof value`).
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// `string dim_param = 2` (a member of `oneof value`).
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}
