/// Errors of the inference module. Messages name the file, tensor or field, what was expected and
/// what was found.
public struct InferenceError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
