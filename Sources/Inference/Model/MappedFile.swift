import Foundation

/// A whole file mapped read-only; unmapped when the owner is deallocated.
final class MappedFile {
    let base: UnsafeMutableRawPointer
    let size: Int

    /// Maps `path`, refusing files outside `minimum...maximum` bytes. `what` names the file in errors.
    init(path: String, what: String, minimum: Int, maximum: Int) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw InferenceError("cannot open \(what) \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw InferenceError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        size = Int(st.st_size)
        guard size >= minimum else { throw InferenceError("\(path): \(size) bytes, too short for a \(what) (at least \(minimum) bytes)") }
        guard size <= maximum else { throw InferenceError("\(path): \(size) bytes exceeds the \(maximum)-byte limit for a \(what)") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw InferenceError("cannot map \(path): \(String(cString: strerror(errno)))")
        }
        base = p
    }

    deinit { munmap(base, size) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}
