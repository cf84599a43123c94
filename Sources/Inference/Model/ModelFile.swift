import Crypto
import Foundation

/// Model file format v1 ("PSMM", SPEC.md §12): one file with the architecture config, the tokenizer
/// vocabulary and a directory of 64-byte-aligned tensors (int8 weights with fp32 per-channel scales,
/// fp32 norms and biases). The model id is the SHA-256 of the whole file, whose layout is canonical:
/// one set of tensors has exactly one byte representation.
public enum ModelFormat {
    public static let magic: [UInt8] = Array("PSMM".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 64
    public static let alignment = 64
    public static let maxTensors = 4096
    public static let maxNameBytes = 256
    public static let maxRank = 4
    public static let maxConfigBytes = 64 << 10
    public static let maxVocabularyBytes = 16 << 20
    public static let maxFileBytes = 8 << 30
}

public enum DType: UInt8, Sendable, Codable {
    case f32 = 1
    case i8 = 2
    public var size: Int { self == .f32 ? 4 : 1 }
    public var name: String { self == .f32 ? "f32" : "i8" }
}

public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Absolute byte offset in the file (a multiple of 64).
    public var offset: Int
    public var byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// Builds a model file. Tensors are written sorted by name.
public struct ModelFileWriter {
    public var config: ModelConfig
    public var vocabulary: [String]
    private var tensors: [String: (DType, [Int], [UInt8])] = [:]

    public init(config: ModelConfig, vocabulary: [String]) {
        self.config = config
        self.vocabulary = vocabulary
    }

    public mutating func add(_ name: String, f32 values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *))
        tensors[name] = (.f32, shape, values.withUnsafeBytes { Array($0) })
    }

    public mutating func add(_ name: String, i8 values: [Int8], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *))
        tensors[name] = (.i8, shape, values.withUnsafeBytes { Array($0) })
    }

    /// The file's bytes.
    public func bytes() throws(InferenceError) -> [UInt8] {
        try config.validate()
        guard vocabulary.count == config.vocabSize else {
            throw InferenceError("vocabulary has \(vocabulary.count) tokens, config says \(config.vocabSize)")
        }
        for t in vocabulary where t.isEmpty || t.utf8.contains(0x0A) {
            throw InferenceError("vocabulary token \(t.debugDescription) is empty or contains a newline")
        }
        let configBytes = config.encoded()
        let vocabBytes = Array(vocabulary.joined(separator: "\n").utf8)
        let names = tensors.keys.sorted()
        var directory: [UInt8] = []
        // Offsets depend on the directory size, which does not depend on the offsets' values.
        var dirSize = 0
        for n in names { dirSize += 2 + n.utf8.count + 2 + 4 * tensors[n]!.1.count + 16 }
        let metaEnd = ModelFormat.headerSize + configBytes.count + vocabBytes.count + dirSize
        var offset = align(metaEnd)
        let dataOffset = offset
        var layout: [(String, Int)] = []
        for n in names {
            let (dtype, shape, data) = tensors[n]!
            guard n.utf8.count <= ModelFormat.maxNameBytes, !shape.isEmpty, shape.count <= ModelFormat.maxRank else {
                throw InferenceError("tensor \(n): name or rank out of bounds")
            }
            directory.appendLE(UInt16(n.utf8.count))
            directory += Array(n.utf8)
            directory.append(dtype.rawValue)
            directory.append(UInt8(shape.count))
            for d in shape { directory.appendLE(UInt32(d)) }
            directory.appendLE(UInt64(offset))
            directory.appendLE(UInt64(data.count))
            layout.append((n, offset))
            offset = align(offset + data.count)
        }
        let fileSize = layout.isEmpty ? dataOffset : align(layout.last!.1 + tensors[layout.last!.0]!.2.count)
        var out: [UInt8] = []
        out.reserveCapacity(fileSize)
        out += ModelFormat.magic
        out.appendLE(ModelFormat.version)
        out.appendLE(UInt64(fileSize))
        out.appendLE(UInt32(configBytes.count))
        out.appendLE(UInt32(vocabBytes.count))
        out.appendLE(UInt32(names.count))
        out.appendLE(UInt32(0))
        out.appendLE(UInt64(dataOffset))
        out += [UInt8](repeating: 0, count: ModelFormat.headerSize - out.count)
        out += configBytes
        out += vocabBytes
        out += directory
        for (n, o) in layout {
            out += [UInt8](repeating: 0, count: o - out.count)
            out += tensors[n]!.2
        }
        out += [UInt8](repeating: 0, count: fileSize - out.count)
        return out
    }

    public func write(to path: String) throws -> (id: String, bytes: Int) {
        let b = try bytes()
        let tmp = path + ".tmp-\(getpid())"
        try Data(b).write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, path) == 0 else { throw InferenceError("cannot move \(tmp) to \(path): errno \(errno)") }
        return (hexDigest(SHA256.hash(data: b)), b.count)
    }
}

func align(_ v: Int) -> Int { (v + ModelFormat.alignment - 1) / ModelFormat.alignment * ModelFormat.alignment }

func hexDigest<D: Sequence>(_ d: D) -> String where D.Element == UInt8 {
    d.map { b in let h = String(b, radix: 16); return h.count == 1 ? "0" + h : h }.joined()
}

/// A validated, memory-mapped model file.
public final class ModelFile: @unchecked Sendable {
    public let path: String
    public let config: ModelConfig
    public let vocabulary: [String]
    public let tensors: [String: TensorInfo]
    /// SHA-256 of the file, hex: the model id.
    public let id: String
    public let fileSize: Int
    private let file: MappedFile
    private var base: UnsafeMutableRawPointer { file.base }

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path, what: "model file", minimum: ModelFormat.headerSize, maximum: ModelFormat.maxFileBytes)
        fileSize = file.size
        (config, vocabulary, tensors) = try ModelFile.validate(file.bytes, path: path)
        id = hexDigest(SHA256.hash(data: file.bytes))
    }

    static func validate(_ b: UnsafeRawBufferPointer, path: String) throws(InferenceError) -> (ModelConfig, [String], [String: TensorInfo]) {
        func fail(_ m: String) -> InferenceError { InferenceError("\(path): \(m)") }
        guard Array(b[0..<4]) == ModelFormat.magic else {
            throw fail("not a PSM model file: magic \(hexDigest(b[0..<4])), expected \(hexDigest(ModelFormat.magic)) (\"PSMM\")")
        }
        let version = b.le(4, UInt32.self)
        guard version == ModelFormat.version else { throw fail("format version \(version), this build reads version \(ModelFormat.version)") }
        let declared = b.le(8, UInt64.self)
        guard declared == UInt64(b.count) else { throw fail("header says \(declared) bytes, the file has \(b.count) (truncated or extended)") }
        let configLength = Int(b.le(16, UInt32.self)), vocabLength = Int(b.le(20, UInt32.self)), count = Int(b.le(24, UInt32.self))
        guard b.le(28, UInt32.self) == 0 else { throw fail("reserved header bytes 28-31 are not zero") }
        for i in 40..<64 where b[i] != 0 { throw fail("reserved header byte \(i) is \(b[i]), expected 0") }
        guard configLength <= ModelFormat.maxConfigBytes else { throw fail("config of \(configLength) bytes exceeds \(ModelFormat.maxConfigBytes)") }
        guard vocabLength <= ModelFormat.maxVocabularyBytes else { throw fail("vocabulary of \(vocabLength) bytes exceeds \(ModelFormat.maxVocabularyBytes)") }
        guard count <= ModelFormat.maxTensors else { throw fail("\(count) tensors exceeds \(ModelFormat.maxTensors)") }
        let dataOffset = Int(clamping: b.le(32, UInt64.self))
        var o = ModelFormat.headerSize
        guard o + configLength + vocabLength <= b.count else { throw fail("config and vocabulary run past the end of the file") }
        let config = try ModelConfig.decode(UnsafeRawBufferPointer(rebasing: b[o..<(o + configLength)]))
        o += configLength
        guard let vocabText = String(validating: b[o..<(o + vocabLength)], as: UTF8.self) else { throw fail("vocabulary is not UTF-8") }
        let vocabulary = vocabText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard vocabulary.count == config.vocabSize else {
            throw fail("vocabulary has \(vocabulary.count) tokens, config says \(config.vocabSize)")
        }
        o += vocabLength
        var tensors: [String: TensorInfo] = [:]
        var expectedOffset = -1
        var lastName = ""
        for i in 0..<count {
            guard o + 4 <= b.count else { throw fail("tensor directory entry \(i) runs past the end") }
            let nameLength = Int(b.le(o, UInt16.self))
            guard nameLength > 0, nameLength <= ModelFormat.maxNameBytes, o + 2 + nameLength + 2 <= b.count else {
                throw fail("tensor directory entry \(i): name length \(nameLength), expected 1...\(ModelFormat.maxNameBytes)")
            }
            guard let name = String(validating: b[(o + 2)..<(o + 2 + nameLength)], as: UTF8.self) else { throw fail("tensor \(i): name is not UTF-8") }
            guard name > lastName else { throw fail("tensor \(name) is out of order or repeated (after \(lastName)); names must ascend") }
            lastName = name
            o += 2 + nameLength
            guard let dtype = DType(rawValue: b[o]) else { throw fail("tensor \(name): dtype \(b[o]), expected 1 (f32) or 2 (i8)") }
            let rank = Int(b[o + 1])
            guard (1...ModelFormat.maxRank).contains(rank) else { throw fail("tensor \(name): rank \(rank), expected 1...\(ModelFormat.maxRank)") }
            o += 2
            guard o + 4 * rank + 16 <= b.count else { throw fail("tensor \(name): directory entry runs past the end") }
            var shape: [Int] = []
            var elements = 1
            for d in 0..<rank {
                let dim = Int(b.le(o + 4 * d, UInt32.self))
                guard dim > 0 else { throw fail("tensor \(name): dimension \(d) is 0") }
                let (m, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow, m <= 1 << 32 else { throw fail("tensor \(name): shape \(shape + [dim]) is too large") }
                elements = m
                shape.append(dim)
            }
            o += 4 * rank
            let offset = Int(clamping: b.le(o, UInt64.self)), length = Int(clamping: b.le(o + 8, UInt64.self))
            o += 16
            guard length == elements * dtype.size else {
                throw fail("tensor \(name): \(length) bytes, expected \(elements * dtype.size) for \(dtype.name) \(shape)")
            }
            if expectedOffset < 0 { expectedOffset = dataOffset }
            guard offset == expectedOffset else {
                throw fail("tensor \(name): offset \(offset), expected \(expectedOffset) (64-byte aligned, in directory order)")
            }
            guard offset + length <= b.count else {
                throw fail("tensor \(name): bytes \(offset)..<\(offset + length) run past the end of the \(b.count)-byte file")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape, offset: offset, byteCount: length)
            expectedOffset = align(offset + length)
        }
        guard dataOffset == align(o) else { throw fail("data offset \(dataOffset), expected \(align(o)) after the directory") }
        let end = count == 0 ? dataOffset : expectedOffset
        guard end == b.count else { throw fail("file is \(b.count) bytes, expected \(end) after the last tensor") }
        // Canonical form: every padding byte is zero.
        var cursor = o
        for t in tensors.values.sorted(by: { $0.offset < $1.offset }) + [TensorInfo(name: "", dtype: .i8, shape: [1], offset: b.count, byteCount: 0)] {
            for i in cursor..<t.offset where b[i] != 0 { throw fail("padding byte \(i) is \(b[i]), expected 0") }
            cursor = t.offset + t.byteCount
        }
        // Every fp32 value finite.
        for t in tensors.values where t.dtype == .f32 {
            let f = UnsafeRawBufferPointer(rebasing: b[t.offset..<(t.offset + t.byteCount)]).bindMemory(to: Float.self)
            if let bad = f.firstIndex(where: { !$0.isFinite }) { throw fail("tensor \(t.name): element \(bad) is \(f[bad]), expected a finite number") }
        }
        return (config, vocabulary, tensors)
    }

    func info(_ name: String, _ dtype: DType, _ shape: [Int]) throws(InferenceError) -> TensorInfo {
        guard let t = tensors[name] else { throw InferenceError("\(path): tensor \(name) is missing") }
        guard t.dtype == dtype, t.shape == shape else {
            throw InferenceError("\(path): tensor \(name) is \(t.dtype.name) \(t.shape), expected \(dtype.name) \(shape)")
        }
        return t
    }

    public func f32(_ name: String, _ shape: [Int]) throws(InferenceError) -> UnsafeBufferPointer<Float> {
        let t = try info(name, .f32, shape)
        return UnsafeBufferPointer(start: (base + t.offset).assumingMemoryBound(to: Float.self), count: t.elementCount)
    }

    public func i8(_ name: String, _ shape: [Int]) throws(InferenceError) -> UnsafeBufferPointer<Int8> {
        let t = try info(name, .i8, shape)
        return UnsafeBufferPointer(start: (base + t.offset).assumingMemoryBound(to: Int8.self), count: t.elementCount)
    }
}
