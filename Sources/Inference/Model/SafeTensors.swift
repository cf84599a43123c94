import Foundation

/// A read-only, memory-mapped safetensors file (the Hugging Face format: an 8-byte little-endian header
/// length, a JSON header, then the raw tensor bytes). Every length and offset is checked before use.
public final class SafeTensors {
    public struct Entry: Sendable { public var dtype: String; public var shape: [Int]; public var begin: Int; public var end: Int }

    public static let maxHeaderBytes = 100 << 20
    public let path: String
    public let entries: [String: Entry]
    private let file: MappedFile
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path, what: "safetensors file", minimum: 8, maximum: Int.max)
        let b = file.bytes, size = file.size
        let n = b.le(0, UInt64.self)
        guard n <= UInt64(SafeTensors.maxHeaderBytes), Int(n) + 8 <= size else {
            throw InferenceError("\(path): header length \(n) exceeds the file (\(size) bytes) or the \(SafeTensors.maxHeaderBytes)-byte limit")
        }
        dataStart = 8 + Int(n)
        let json = try JSONSerialization.jsonObject(with: Data(b[8..<dataStart]))
        guard let header = json as? [String: Any] else { throw InferenceError("\(path): header is not a JSON object") }
        var entries: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let v = value as? [String: Any], let dtype = v["dtype"] as? String, let shape = v["shape"] as? [Int],
                let offsets = v["data_offsets"] as? [Int], offsets.count == 2
            else { throw InferenceError("\(path): tensor \(name) has a malformed header entry") }
            let width: Int
            switch dtype {
            case "F32", "I32": width = 4
            case "F16", "BF16": width = 2
            case "I64", "F64": width = 8
            case "I8", "U8", "BOOL": width = 1
            default: throw InferenceError("\(path): tensor \(name) has unsupported dtype \(dtype)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], dataStart + offsets[1] <= size else {
                throw InferenceError("\(path): tensor \(name) has offsets \(offsets) outside the \(size - dataStart)-byte data section")
            }
            let count = shape.reduce(1, *)
            guard offsets[1] - offsets[0] == count * width else {
                throw InferenceError("\(path): tensor \(name) is \(offsets[1] - offsets[0]) bytes, expected \(count * width) for \(dtype) \(shape)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
        }
        self.entries = entries
    }

    /// The tensor as fp32 (F16 and BF16 are widened exactly).
    public func floats(_ name: String) throws -> (values: [Float], shape: [Int]) {
        guard let e = entries[name] else { throw InferenceError("\(path): tensor \(name) is missing") }
        let raw = UnsafeRawBufferPointer(start: file.base + dataStart + e.begin, count: e.end - e.begin)
        let n = e.shape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        switch e.dtype {
        case "F32":
            for i in 0..<n { out[i] = Float(bitPattern: raw.le(4 * i, UInt32.self)) }
        case "BF16":
            for i in 0..<n { out[i] = Float(bitPattern: UInt32(raw.le(2 * i, UInt16.self)) << 16) }
        case "F16":
            for i in 0..<n { out[i] = Float(Float16(bitPattern: raw.le(2 * i, UInt16.self))) }
        default:
            throw InferenceError("\(path): tensor \(name) is \(e.dtype), expected a floating-point tensor")
        }
        if let bad = out.firstIndex(where: { !$0.isFinite }) { throw InferenceError("\(path): tensor \(name) element \(bad) is not finite") }
        return (out, e.shape)
    }
}
