import CZstd

/// zstd compression, bounded on the way in. The only file of the package that imports CZstd.
///
/// Decompression never trusts the frame: the caller states the exact uncompressed size (from the
/// record header, itself bounded), the window is limited to ``maxWindowLog``, and a frame that
/// declares or produces any other size is an error. See SPEC.md §4.4.
public enum Zstd {
    /// Largest window a frame may ask for when decompressing (2^23 = 8 MiB).
    public static let maxWindowLog: Int32 = 23
    public static let defaultLevel: Int32 = 3

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case compressionFailed(String)
        case decompressionFailed(String)
        case sizeMismatch(expected: Int, found: Int)
        case declaredSizeMismatch(expected: Int, declared: UInt64)
        case dictionaryRejected(String)

        public var description: String {
            switch self {
            case .compressionFailed(let m): return "zstd compression failed: \(m)"
            case .decompressionFailed(let m): return "zstd decompression failed: \(m)"
            case .sizeMismatch(let e, let f): return "zstd frame decompressed to \(f) bytes, expected \(e)"
            case .declaredSizeMismatch(let e, let d): return "zstd frame declares \(d) bytes of content, expected \(e)"
            case .dictionaryRejected(let m): return "zstd dictionary rejected: \(m)"
            }
        }
    }

    static func name(_ code: Int) -> String { String(cString: ZSTD_getErrorName(code)) }

    /// A reusable compressor (not thread-safe: one per thread).
    public final class Compressor {
        let cctx: OpaquePointer
        var cdict: OpaquePointer?
        public init(level: Int32 = Zstd.defaultLevel, dictionary: [UInt8]? = nil) throws {
            guard let c = ZSTD_createCCtx() else { throw Error.compressionFailed("out of memory") }
            cctx = c
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
            // Keep frames small and self-describing: content size yes, checksum no (the record has CRC-32C),
            // dictionary id no (the record header names the dictionary).
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 0)
            if let dictionary {
                cdict = dictionary.withUnsafeBytes { ZSTD_createCDict($0.baseAddress, $0.count, level) }
                guard let cdict else { throw Error.dictionaryRejected("ZSTD_createCDict failed") }
                let rc = ZSTD_CCtx_refCDict(cctx, cdict)
                if ZSTD_isError(rc) != 0 { throw Error.dictionaryRejected(Zstd.name(rc)) }
            }
        }
        deinit {
            ZSTD_freeCCtx(cctx)
            if let cdict { ZSTD_freeCDict(cdict) }
        }

        /// Compresses `input` into `output` (at least `ZSTD_compressBound(input.count)` bytes) and
        /// returns the frame's size.
        public func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
            let rc = ZSTD_compress2(cctx, output.baseAddress, output.count, input.baseAddress, input.count)
            if ZSTD_isError(rc) != 0 { throw Error.compressionFailed(Zstd.name(rc)) }
            return rc
        }

        public static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }

        public func compress(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
            let bound = ZSTD_compressBound(input.count)
            var rc = 0
            let out = [UInt8](unsafeUninitializedCapacity: bound) { o, count in
                rc = ZSTD_compress2(cctx, o.baseAddress, o.count, input.baseAddress, input.count)
                count = ZSTD_isError(rc) != 0 ? 0 : rc
            }
            if ZSTD_isError(rc) != 0 { throw Error.compressionFailed(Zstd.name(rc)) }
            return out
        }
    }

    /// A reusable decompressor (not thread-safe: one per thread).
    public final class Decompressor {
        let dctx: OpaquePointer
        var ddict: OpaquePointer?
        public init(dictionary: [UInt8]? = nil) throws {
            guard let d = ZSTD_createDCtx() else { throw Error.decompressionFailed("out of memory") }
            dctx = d
            ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, Zstd.maxWindowLog)
            if let dictionary {
                ddict = dictionary.withUnsafeBytes { ZSTD_createDDict($0.baseAddress, $0.count) }
                guard let ddict else { throw Error.dictionaryRejected("ZSTD_createDDict failed") }
                let rc = ZSTD_DCtx_refDDict(dctx, ddict)
                if ZSTD_isError(rc) != 0 { throw Error.dictionaryRejected(Zstd.name(rc)) }
            }
        }
        deinit {
            ZSTD_freeDCtx(dctx)
            if let ddict { ZSTD_freeDDict(ddict) }
        }

        /// Decompresses one frame that must produce exactly `size` bytes. The caller bounds `size`.
        public func decompress(_ input: UnsafeRawBufferPointer, size: Int) throws -> [UInt8] {
            let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
            // ZSTD_CONTENTSIZE_ERROR = (0ULL - 2), ZSTD_CONTENTSIZE_UNKNOWN = (0ULL - 1)
            if declared == UInt64.max - 1 { throw Error.decompressionFailed("not a zstd frame") }
            if declared != UInt64.max && declared != UInt64(size) {
                throw Error.declaredSizeMismatch(expected: size, declared: declared)
            }
            // Exactly one frame: trailing bytes (another frame or junk) are refused before decoding.
            let frame = ZSTD_findFrameCompressedSize(input.baseAddress, input.count)
            if ZSTD_isError(frame) != 0 { throw Error.decompressionFailed(Zstd.name(frame)) }
            if frame != input.count { throw Error.decompressionFailed("\(input.count - frame) trailing bytes after the frame") }
            // One-shot into room for `size` + 1 bytes, so a frame producing more than `size` is caught
            // either way (one byte more, or zstd's "destination buffer too small").
            var produced = 0
            let out = try [UInt8](unsafeUninitializedCapacity: size + 1) { o, count in
                let rc = ZSTD_decompressDCtx(dctx, o.baseAddress, size + 1, input.baseAddress, input.count)
                if ZSTD_isError(rc) != 0 {
                    // More than size + 1 bytes: the frame expands past the bound.
                    if ZSTD_getErrorCode(rc) == ZSTD_error_dstSize_tooSmall { throw Error.sizeMismatch(expected: size, found: size + 1) }
                    throw Error.decompressionFailed(Zstd.name(rc))
                }
                produced = rc
                count = min(rc, size)
            }
            if produced != size { throw Error.sizeMismatch(expected: size, found: produced) }
            return out
        }
    }

    /// Trains a dictionary of at most `capacity` bytes on `samples` (ZDICT, deterministic for the same input).
    public static func trainDictionary(samples: [[UInt8]], capacity: Int) throws -> [UInt8] {
        var flat = [UInt8]()
        var sizes = [Int]()
        for s in samples { flat.append(contentsOf: s); sizes.append(s.count) }
        var dict = [UInt8](repeating: 0, count: capacity)
        let n = dict.withUnsafeMutableBytes { d in
            flat.withUnsafeBytes { f in
                ZDICT_trainFromBuffer(d.baseAddress, d.count, f.baseAddress, sizes, UInt32(sizes.count))
            }
        }
        if ZDICT_isError(n) != 0 { throw Error.dictionaryRejected(String(cString: ZDICT_getErrorName(n))) }
        dict.removeLast(capacity - n)
        return dict
    }

    /// zstd's library version string, for reports.
    public static var libraryVersion: String { String(cString: ZSTD_versionString()) }
}

extension Zstd {
    /// Compresses through the streaming API without pledging a size, so the frame header carries no
    /// content size (as streamed frames from other writers may not). Used by tests of the bounds.
    public static func compressWithoutContentSize(_ input: [UInt8], level: Int32 = 3) throws -> [UInt8] {
        guard let cctx = ZSTD_createCCtx() else { throw Error.compressionFailed("out of memory") }
        defer { ZSTD_freeCCtx(cctx) }
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count) + 64)
        var produced = 0
        try input.withUnsafeBytes { i in
            try out.withUnsafeMutableBytes { o in
                // Feed the first half with "continue" so zstd cannot infer the total size up front.
                var inBuf = ZSTD_inBuffer(src: i.baseAddress, size: i.count / 2, pos: 0)
                var outBuf = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                while inBuf.pos < inBuf.size {
                    let rc = ZSTD_compressStream2(cctx, &outBuf, &inBuf, ZSTD_e_continue)
                    if ZSTD_isError(rc) != 0 { throw Error.compressionFailed(Zstd.name(rc)) }
                }
                inBuf.size = i.count
                while true {
                    let rc = ZSTD_compressStream2(cctx, &outBuf, &inBuf, ZSTD_e_end)
                    if ZSTD_isError(rc) != 0 { throw Error.compressionFailed(Zstd.name(rc)) }
                    if rc == 0 { break }
                }
                produced = outBuf.pos
            }
        }
        return Array(out.prefix(produced))
    }
}
