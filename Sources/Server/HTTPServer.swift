import API
import Engine
import Foundation
import Hummingbird
import Logging
import NIOCore
import Projections

/// The request context: Hummingbird's core storage plus the key that authenticated the request.
public struct PSMContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var key: KeyRecord?
    public init(source: Source) {
        coreContext = .init(source: source)
        key = nil
    }
}

/// Where a user is served, on a cluster node (SPEC.md §15.5): here, on the node at a base URL
/// (`http://host:port`), or nowhere yet (its partition is between owners).
public enum Placement: Sendable, Equatable {
    case here
    case elsewhere(String)
    case unowned(partition: Int)
}

/// One served route: method, OpenAPI path and the scope it needs (nil: no key needed).
public struct RouteSpec: Sendable, Hashable {
    public var method: String
    public var path: String
    public var scope: Scope?
}

/// The HTTP API (`psm serve`, docs/openapi.json): JSON over HTTP/1.1 under `/v1`. The tenant comes
/// from the API key alone (`Authorization: Bearer psm_…`); every user id in a path is a user of that
/// tenant, so no request can name another tenant's data. Handlers only parse and format; the work is
/// ``MemoryService``'s.
public enum HTTPServer {
    /// Every route the server serves; a test checks docs/openapi.json describes exactly these.
    public static let routes: [RouteSpec] = [
        .init(method: "GET", path: "/v1/health", scope: nil),
        .init(method: "POST", path: "/v1/users/{user}/observations", scope: .memoryWrite),
        .init(method: "POST", path: "/v1/users/{user}/observations/batch", scope: .memoryWrite),
        .init(method: "POST", path: "/v1/users/{user}/recall", scope: .memoryRead),
        .init(method: "POST", path: "/v1/users/{user}/feedback", scope: .memoryWrite),
        .init(method: "POST", path: "/v1/users/{user}/sleep", scope: .memoryWrite),
        .init(method: "GET", path: "/v1/users/{user}/tiers", scope: .memoryRead),
        .init(method: "GET", path: "/v1/users/{user}/memories/{memory}", scope: .memoryRead),
        .init(method: "GET", path: "/v1/users/{user}/memories/{memory}/history", scope: .memoryRead),
        .init(method: "GET", path: "/v1/users/{user}/memories/{memory}/provenance", scope: .memoryRead),
        .init(method: "GET", path: "/v1/users/{user}/export", scope: .memoryRead),
        .init(method: "GET", path: "/v1/users/{user}/journal", scope: .journalRead),
        .init(method: "POST", path: "/v1/users/{user}/replay-verify", scope: .journalRead),
        .init(method: "DELETE", path: "/v1/users/{user}", scope: .admin),
    ]

    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        public init() {}
    }

    /// Runs the server until SIGINT or SIGTERM, then shuts down gracefully: the listener closes, requests
    /// in flight (and their journal commits) finish, and only then does this return.
    public static func run(
        service: MemoryService, keys: any KeyAuthority, options: Options, logger: Logger, placement: (@Sendable (UserRef) -> Placement)? = nil,
        health: (@Sendable () -> [String: String])? = nil, onRunning: @escaping @Sendable (Int) -> Void
    ) async throws {
        let router = buildRouter(service: service, keys: keys, logger: logger, placement: placement, health: health)
        let app = Application(
            router: router, configuration: .init(address: .hostname(options.host, port: options.port), serverName: "psm"),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? options.port) }, logger: logger)
        try await app.runService()
    }

    /// `placement` (cluster nodes): a request for a user served elsewhere gets 307 to the same path on
    /// that node; one whose partition has no owner yet gets 503 `unowned` (retry shortly). `health`
    /// adds fields to /v1/health.
    public static func buildRouter(
        service: MemoryService, keys: any KeyAuthority, logger: Logger, placement: (@Sendable (UserRef) -> Placement)? = nil,
        health: (@Sendable () -> [String: String])? = nil
    ) -> Router<PSMContext> {
        let router = Router(context: PSMContext.self)
        router.add(middleware: Guard(keys: keys, limits: service.limits, logger: logger))
        let scopes = Dictionary(uniqueKeysWithValues: routes.map { (RouteKey($0.method, $0.path), $0.scope) })

        func on(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping @Sendable (Request, PSMContext, UserRef) async throws -> Response) {
            let scope = scopes[RouteKey(method.rawValue, path)] ?? nil
            let hbPath = path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
            router.on(RouterPath(hbPath), method: method) { request, context in
                guard let key = context.key else { throw APIError(401, "unauthorized", "this route needs an API key: Authorization: Bearer psm_…") }
                if let scope, !key.allows(scope) {
                    throw APIError(403, "forbidden", "this route needs scope \(scope.rawValue); the key has \(key.scopes.map(\.rawValue).joined(separator: ","))")
                }
                let userID = context.parameters.get("user") ?? ""
                let user: UserRef
                do { user = try UserRef(tenant: key.tenant, user: userID) } catch { throw APIError.badRequest("user id: \(error)") }
                switch placement?(user) ?? .here {
                case .here: break
                case .elsewhere(let base):
                    let target = base + request.uri.description
                    return Response(status: .temporaryRedirect, headers: [.location: target, .contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(string: #"{"redirect":"\#(target)"}"#)))
                case .unowned(let p):
                    throw APIError(503, "unowned", "the user's partition \(p) is moving between nodes; retry in a second")
                }
                return try await handler(request, context, user)
            }
        }

        router.get("/v1/health") { _, _ -> Response in
            var fields = health?() ?? [:]
            fields["status"] = "ok"
            return try json(fields)
        }
        on(.post, "/v1/users/{user}/observations") { req, ctx, user in
            try json(try await service.observe(user, try await body(req, Requests.Observation.self, service.limits)), status: .created)
        }
        on(.post, "/v1/users/{user}/observations/batch") { req, ctx, user in
            struct Out: Encodable { var results: [ObserveJSON] }
            return try json(Out(results: try await service.observeBatch(user, try await body(req, Requests.Batch.self, service.limits))), status: .created)
        }
        on(.post, "/v1/users/{user}/recall") { req, ctx, user in
            let r = try await body(req, Requests.Recall.self, service.limits)
            if MemoryService.recallWrites(r), !(ctx.key?.allows(.memoryWrite) ?? false) {
                throw APIError(403, "forbidden", "a journaled recall needs scope memory:write; with memory:read alone pass \"peek\": true or \"as_of\"")
            }
            return try json(try await service.recall(user, r))
        }
        on(.post, "/v1/users/{user}/feedback") { req, ctx, user in
            try json(try await service.feedback(user, try await body(req, Requests.Feedback.self, service.limits)), status: .created)
        }
        on(.post, "/v1/users/{user}/sleep") { req, ctx, user in
            try json(try await service.sleep(user, try await body(req, Requests.Sleep.self, service.limits, optional: true) ?? .init()))
        }
        on(.get, "/v1/users/{user}/tiers") { req, ctx, user in
            let q = req.uri.queryParameters
            let limit = try intParameter(q.get("limit"), "limit") ?? 20
            return try json(try await service.tiers(user, asOf: q.get("as_of"), at: q.get("at"), limit: limit))
        }
        on(.get, "/v1/users/{user}/memories/{memory}") { req, ctx, user in
            let q = req.uri.queryParameters
            return try json(try await service.memory(user, ctx.parameters.get("memory") ?? "", asOf: q.get("as_of"), at: q.get("at")))
        }
        on(.get, "/v1/users/{user}/memories/{memory}/history") { req, ctx, user in
            struct Out: Encodable { var events: [HistoryEntryJSON] }
            return try json(Out(events: try await service.history(user, ctx.parameters.get("memory") ?? "")))
        }
        on(.get, "/v1/users/{user}/memories/{memory}/provenance") { req, ctx, user in
            let q = req.uri.queryParameters
            return try json(try await service.provenance(user, ctx.parameters.get("memory") ?? "", asOf: q.get("as_of"), proof: q.get("proof") == "true"))
        }
        on(.get, "/v1/users/{user}/export") { req, ctx, user in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var buffer = ByteBuffer()
            for line in try service.export(user) {
                buffer.writeBytes(try encoder.encode(line))
                buffer.writeString("\n")
            }
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: .init(byteBuffer: buffer))
        }
        on(.get, "/v1/users/{user}/journal") { req, ctx, user in
            let q = req.uri.queryParameters
            let from = try intParameter(q.get("from"), "from") ?? 0
            guard from >= 0 else { throw APIError.badRequest("from must be a revision ≥ 0, got \(from)") }
            return try json(try await service.journal(user, from: UInt64(from), limit: try intParameter(q.get("limit"), "limit") ?? 100))
        }
        on(.post, "/v1/users/{user}/replay-verify") { req, ctx, user in
            try json(try await service.replayVerify(user))
        }
        on(.delete, "/v1/users/{user}") { req, ctx, user in
            try json(try await service.erase(user, try await body(req, Requests.Erase.self, service.limits, optional: true) ?? .init()))
        }
        return router
    }

    struct RouteKey: Hashable {
        var method, path: String
        init(_ m: String, _ p: String) {
            method = m
            path = p
        }
    }

    static func intParameter(_ s: String?, _ name: String) throws -> Int? {
        guard let s else { return nil }
        guard let v = Int(s) else { throw APIError.badRequest("\(name) must be an integer, got \"\(s.prefix(40))\"") }
        return v
    }

    /// Decodes a JSON body of at most the limit; an empty body is nil when `optional`.
    static func body<T: Decodable>(_ request: Request, _ type: T.Type, _ limits: Limits, optional: Bool = false) async throws -> T? {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: limits.maxBodyBytes) } catch {
            throw APIError(413, "too_large", "request body over \(limits.maxBodyBytes) bytes")
        }
        if buffer.readableBytes == 0 {
            if optional { return nil }
            throw APIError.badRequest("the request needs a JSON body")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let DecodingError.keyNotFound(k, _) {
            throw APIError.badRequest("malformed JSON body: missing field \"\(k.stringValue)\"")
        } catch let DecodingError.typeMismatch(t, c) {
            throw APIError.badRequest("malformed JSON body: \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\" must be \(t)")
        } catch let DecodingError.valueNotFound(t, c) {
            throw APIError.badRequest("malformed JSON body: \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\" must be \(t), not null")
        } catch {
            throw APIError.badRequest("malformed JSON body: not valid JSON for this route")
        }
    }

    static func body<T: Decodable>(_ request: Request, _ type: T.Type, _ limits: Limits) async throws -> T {
        try await body(request, type, limits, optional: false)!
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func errorResponse(_ e: APIError) -> Response {
        struct Body: Encodable { var error: Inner }
        struct Inner: Encodable { var code, message: String }
        let status = HTTPResponse.Status(code: e.status)
        var r = (try? json(Body(error: Inner(code: e.code, message: e.message)), status: status)) ?? Response(status: status)
        if e.status == 503 { r.headers[.retryAfter] = "1" }
        if e.status == 401 { r.headers[.wwwAuthenticate] = "Bearer" }
        return r
    }
}

/// Authenticates the key, bounds concurrent requests, turns every error into the JSON error shape and
/// logs one line per request without user content (route pattern, status, tenant, key id, duration).
struct Guard: RouterMiddleware {
    typealias Context = PSMContext
    let keys: any KeyAuthority
    let limits: Limits
    let logger: Logger
    let inFlight = Counter()

    func handle(_ request: Request, context: PSMContext, next: (Request, PSMContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        if let auth = request.headers[.authorization] {
            guard auth.hasPrefix("Bearer "), let key = keys.authenticate(String(auth.dropFirst(7))) else {
                return finish(request, context, HTTPServer.errorResponse(APIError(401, "unauthorized", "the API key is unknown, malformed or revoked")), start)
            }
            context.key = key
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limits.maxBodyBytes {
            return finish(request, context, HTTPServer.errorResponse(APIError(413, "too_large", "request body of \(length) bytes; the limit is \(limits.maxBodyBytes)")), start)
        }
        guard inFlight.enter(limit: limits.maxConcurrentRequests) else {
            return finish(request, context, HTTPServer.errorResponse(APIError(503, "busy", "more than \(limits.maxConcurrentRequests) requests in flight; retry")), start)
        }
        defer { inFlight.leave() }
        let response: Response
        do {
            response = try await next(request, context)
        } catch let e as APIError {
            response = HTTPServer.errorResponse(e)
        } catch let e as HTTPError {
            let code = e.status.code == 404 ? "not_found" : e.status.code == 405 ? "method_not_allowed" : "http_\(e.status.code)"
            let message = e.status.code == 404 ? "no route \(request.method.rawValue) \(request.uri.path) (see docs/openapi.json)" : e.status.reasonPhrase
            response = HTTPServer.errorResponse(APIError(Int(e.status.code), code, message))
        } catch {
            response = HTTPServer.errorResponse(APIError.from(error))
        }
        return finish(request, context, response, start)
    }

    func finish(_ request: Request, _ context: PSMContext, _ response: Response, _ start: ContinuousClock.Instant) -> Response {
        let ms = Double((ContinuousClock.now - start).components.attoseconds) / 1e15 + Double((ContinuousClock.now - start).components.seconds) * 1e3
        logger.info(
            "request",
            metadata: [
                "method": .string(request.method.rawValue), "route": .string(context.endpointPath ?? "-"), "status": .stringConvertible(response.status.code),
                "tenant": .string(context.key?.tenant ?? "-"), "key": .string(context.key?.id ?? "-"), "ms": .string(String(format: "%.2f", ms)),
            ])
        return response
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func enter(limit: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return false }
        value += 1
        return true
    }
    func leave() {
        lock.lock()
        value -= 1
        lock.unlock()
    }
}
