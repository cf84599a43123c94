import Engine
import Foundation
import Inference
import Journal
import Projections

/// An error as the interfaces report it: a stable code, an HTTP status and a message that names the
/// offending value. The HTTP body is `{"error": {"code": …, "message": …}}`.
public struct APIError: Error, Sendable, CustomStringConvertible, Equatable {
    public var status: Int
    public var code: String
    public var message: String

    public init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func badRequest(_ m: String) -> APIError { APIError(400, "bad_request", m) }
    public static func notFound(_ m: String) -> APIError { APIError(404, "not_found", m) }

    /// Maps the engine's, projections' and journal's errors.
    public static func from(_ error: any Error) -> APIError {
        if let e = error as? APIError { return e }
        if let e = error as? EngineError {
            switch e {
            case .invalidArgument: return APIError(400, "bad_request", e.description)
            case .notFound: return APIError(404, "not_found", e.description)
            case .conflict: return APIError(409, "conflict", e.description)
            }
        }
        if let e = error as? ProjectionError {
            switch e {
            case .invalidArgument: return APIError(400, "bad_request", e.description)
            case .notFound: return APIError(404, "not_found", e.description)
            case .erased: return APIError(410, "erased", e.description)
            case .malformed, .corrupt: return APIError(500, "corrupt", e.description)
            case .storage, .gap: return APIError(503, "storage", e.description)
            }
        }
        if let e = error as? JournalError {
            switch e {
            case .corruptRecord, .corruptIndex, .payload: return APIError(500, "corrupt", e.description)
            case .invalidArgument: return APIError(400, "bad_request", e.description)
            case .wrongExpectedRevision, .eventIDConflict, .partialDuplicate: return APIError(409, "conflict", e.description)
            default: return APIError(503, "storage", e.description)
            }
        }
        if let e = error as? InferenceError { return APIError(500, "model", e.description) }
        return APIError(500, "internal", "\(error)")
    }
}
