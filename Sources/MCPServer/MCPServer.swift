import API
import Engine
import Foundation
import Logging
import MCP
import Projections

/// The stdio MCP server (`psm mcp`): tools `remember`, `recall`, `feedback` and `provenance` for one
/// user of one store, so an agent host gives its LLM memory without an HTTP hop. Tool results are the
/// same JSON shapes as the HTTP API's (docs/openapi.json); a bad argument is a tool error naming it.
public enum MCPServer {
    public static let tools: [Tool] = [
        Tool(
            name: "remember",
            description: """
                Record something the user said or that happened in the conversation. The memory model decides \
                whether it is worth remembering (small talk is dropped), how strongly, and whether it updates \
                an older memory. Returns the observation id and, when kept, the memory id.
                """,
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "text": .object(["type": "string", "description": "The turn's text, verbatim."]),
                    "speaker": .object(["type": "string", "description": "Who said it (e.g. the user's name or \"assistant\")."]),
                    "session": .object(["type": "string", "description": "Conversation or session id."]),
                    "source_id": .object(["type": "string", "description": "The host's own id for this turn, reported back by provenance."]),
                    "at": .object(["type": "string", "description": "Event time, ISO 8601 (default: now)."]),
                ]),
                "required": .array(["text"]),
            ]),
            annotations: .init(title: "Remember", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false)),
        Tool(
            name: "recall",
            description: """
                Recall the user's memories most useful for a question or the current topic, best first, each \
                with its text, tier, strength and the ids of the turns it came from. Call it before answering \
                anything that depends on what the user said earlier. The recall is journaled; pass its id to \
                feedback.
                """,
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "query": .object(["type": "string", "description": "The question or topic."]),
                    "k": .object(["type": "integer", "description": "How many memories (1-100, default 5).", "minimum": 1, "maximum": 100]),
                    "as_of": .object(["type": "string", "description": "Answer as of a past journal position or ISO 8601 time (writes nothing)."]),
                ]),
                "required": .array(["query"]),
            ]),
            annotations: .init(title: "Recall", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false)),
        Tool(
            name: "feedback",
            description: """
                Say whether a recalled memory helped answer: "helped" reinforces it, "irrelevant" weakens it, \
                "corrected" (the memory was wrong; put the correction in note) weakens it most.
                """,
            inputSchema: .object([
                "type": "object",
                "properties": .object([
                    "recall": .object(["type": "string", "description": "The recall id returned by recall."]),
                    "memory": .object(["type": "string", "description": "The memory id the feedback is about."]),
                    "kind": .object(["type": "string", "enum": .array(["helped", "irrelevant", "corrected"])]),
                    "note": .object(["type": "string", "description": "Optional note, e.g. the correction."]),
                ]),
                "required": .array(["recall", "memory", "kind"]),
            ]),
            annotations: .init(title: "Feedback", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false)),
        Tool(
            name: "provenance",
            description: """
                Where a memory came from: its source memories down to the observed turns, with session, \
                speaker, time and the host's source ids.
                """,
            inputSchema: .object([
                "type": "object",
                "properties": .object(["memory": .object(["type": "string", "description": "The memory id."])]),
                "required": .array(["memory"]),
            ]),
            annotations: .init(title: "Provenance", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false)),
    ]

    /// Serves `user` on standard input and output until the host closes the pipe.
    public static func run(service: MemoryService, user: UserRef, version: String) async throws {
        let server = Server(
            name: "psm", version: version, instructions: "Long-term memory for one user: remember turns, recall memories before answering, give feedback.",
            capabilities: .init(tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { _ in .init(tools: tools) }
        await server.withMethodHandler(CallTool.self) { params in
            do {
                return .init(content: [.text(text: try await call(service, user, params.name, params.arguments ?? [:]), annotations: nil, _meta: nil)], isError: false)
            } catch {
                let e = APIError.from(error)
                return .init(content: [.text(text: "error \(e.code): \(e.message)", annotations: nil, _meta: nil)], isError: true)
            }
        }
        try await server.start(transport: StdioTransport())
        await server.waitUntilCompleted()
    }

    static func call(_ service: MemoryService, _ user: UserRef, _ name: String, _ args: [String: Value]) async throws -> String {
        func string(_ key: String, required: Bool = false) throws -> String? {
            guard let v = args[key], !v.isNull else {
                if required { throw APIError.badRequest("argument \"\(key)\" is required") }
                return nil
            }
            guard let s = v.stringValue else { throw APIError.badRequest("argument \"\(key)\" must be a string") }
            return s
        }
        switch name {
        case "remember":
            return try encode(
                try await service.observe(
                    user, .init(text: try string("text", required: true)!, session: try string("session"), speaker: try string("speaker"), source_id: try string("source_id"), at: try string("at"))))
        case "recall":
            var k: Int? = nil
            if let v = args["k"], !v.isNull {
                guard let i = v.intValue ?? v.doubleValue.flatMap({ $0 == $0.rounded() ? Int(exactly: $0) : nil }) else { throw APIError.badRequest("argument \"k\" must be an integer") }
                k = i
            }
            return try encode(try await service.recall(user, .init(query: try string("query", required: true)!, k: k, as_of: try string("as_of"))))
        case "feedback":
            return try encode(
                try await service.feedback(
                    user, .init(recall: try string("recall", required: true)!, memory: try string("memory", required: true)!, kind: try string("kind", required: true)!, note: try string("note"))))
        case "provenance":
            try await service.engine.refresh(user)  // a cluster engine reads what other writers added
            return try encode(try await service.provenance(user, try string("memory", required: true)!, asOf: nil))
        default:
            throw APIError.badRequest("unknown tool \"\(name.prefix(40))\" (tools: \(tools.map(\.name).joined(separator: ", ")))")
        }
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
