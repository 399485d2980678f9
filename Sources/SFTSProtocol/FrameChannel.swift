import Foundation

/// Message types on the wire. Requests come from the client, the rest from the server.
public enum MessageType: String, Codable, Sendable {
    case error
    case enrollStart = "enroll-start"
    case enrollChallenge = "enroll-challenge"
    case enrollProof = "enroll-proof"
    case enrollAccepted = "enroll-accepted"
    case enrollRequest = "enroll-request"
    case enrollCompleted = "enroll-completed"
    case loginStart = "login-start"
    case loginChallenge = "login-challenge"
    case loginProof = "login-proof"
    case loginAccepted = "login-accepted"
    case list
    case listResult = "list-result"
    case put
    case putReady = "put-ready"
    case putRecord = "put-record"
    case putCompleted = "put-completed"
    case get
    case getReady = "get-ready"
    case getRecord = "get-record"
    case remove
    case removeCompleted = "remove-completed"
    case changePassword = "change-password"
    case passwordChanged = "password-changed"
    case renew
    case renewed
    case openSession = "open-session"
    case sessionOpened = "session-opened"
    case ping
    case pong
}

/// A frame as received: its envelope fields and the JSON it came in, from which the body is
/// decoded once the type is known.
public struct IncomingFrame {
    public let version: Int
    public let typeName: String
    public let id: String
    public let timestamp: String
    private let json: Data

    /// The message type, or nil for a name this build does not know.
    public var type: MessageType? { MessageType(rawValue: typeName) }

    fileprivate init(head: FrameHead, json: Data) {
        version = head.v
        typeName = head.type
        id = head.id
        timestamp = head.ts
        self.json = json
    }

    /// Decodes the body as `Body`, throwing `malformedFrame` when the fields do not match.
    public func body<Body: Decodable>(_: Body.Type) throws -> Body {
        do {
            return try JSONDecoder().decode(FrameEnvelope<Body>.self, from: json).body
        } catch {
            throw ProtocolError.malformedFrame("invalid \(typeName) body: \(describe(error))")
        }
    }

    /// Decodes the body as `Body` after checking that the frame has type `expected`.
    ///
    /// An `error` frame is thrown as `ProtocolError.remote`, so callers handle the peer's
    /// error the same way wherever it arrives.
    public func expect<Body: Decodable>(_ expected: MessageType, _: Body.Type) throws -> Body {
        if type == .error {
            let error = try body(ErrorBody.self)
            throw ProtocolError.remote(code: error.code, message: error.message)
        }
        guard type == expected else {
            throw ProtocolError.unexpectedMessage(
                expected: expected.rawValue, received: typeName)
        }
        return try body(Body.self)
    }
}

private struct FrameHead: Decodable {
    let v: Int
    let type: String
    let id: String
    let ts: String
}

private struct FrameEnvelope<Body: Decodable>: Decodable {
    let body: Body
}

private struct OutgoingFrame<Body: Encodable>: Encodable {
    let v: Int
    let type: String
    let id: String
    let ts: String
    let body: Body
}

private func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _):
        return "missing field \(key.stringValue)"
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        return "wrong type for field \(path)"
    case DecodingError.dataCorrupted(let context):
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        return path.isEmpty ? context.debugDescription : "invalid value for field \(path)"
    default:
        return "\(error)"
    }
}

/// Length-prefixed JSON frames and raw bodies over one byte stream.
///
/// A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON:
/// `{"v":1,"type":...,"id":...,"ts":...,"body":{...}}`. File contents travel between frames as
/// raw bytes whose count the preceding frame declares. The declared length is checked against
/// the limit before anything is allocated for it.
public final class FrameChannel {
    public typealias Reader = (UnsafeMutableRawBufferPointer) throws -> Int
    public typealias Writer = (UnsafeRawBufferPointer) throws -> Void

    /// The protocol version this build speaks.
    public static let protocolVersion = 1

    private let readSome: Reader
    private let writeAll: Writer
    private let encoder: JSONEncoder

    /// The largest incoming frame accepted, in bytes.
    public var maxFrameBytes: Int

    /// Creates a channel over `read`, which returns 0 at end of stream, and `write`, which
    /// writes the whole buffer.
    public init(maxFrameBytes: Int, read: @escaping Reader, write: @escaping Writer) {
        self.maxFrameBytes = maxFrameBytes
        readSome = read
        writeAll = write
        encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
    }

    /// Sends one frame.
    public func send<Body: Encodable>(
        _ type: MessageType, id: String, body: Body, date: Date = Date()
    ) throws {
        let frame = OutgoingFrame(
            v: FrameChannel.protocolVersion, type: type.rawValue, id: id,
            ts: Timestamp.format(date), body: body)
        let json = try encoder.encode(frame)
        var bytes = [UInt8]()
        bytes.reserveCapacity(json.count + 4)
        let length = UInt32(json.count)
        bytes.append(UInt8(truncatingIfNeeded: length >> 24))
        bytes.append(UInt8(truncatingIfNeeded: length >> 16))
        bytes.append(UInt8(truncatingIfNeeded: length >> 8))
        bytes.append(UInt8(truncatingIfNeeded: length))
        bytes.append(contentsOf: json)
        try bytes.withUnsafeBytes { try writeAll($0) }
    }

    /// Sends an `error` frame in response to request `id`.
    public func sendError(_ code: WireErrorCode, _ message: String, id: String) throws {
        try send(.error, id: id, body: ErrorBody(code: code, message: message))
    }

    /// Receives one frame; throws `connectionClosed` when the stream ends cleanly before it.
    public func receive() throws -> IncomingFrame {
        var prefix = [UInt8](repeating: 0, count: 4)
        let first = try prefix.withUnsafeMutableBytes { buffer in
            try readSome(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<4]))
        }
        if first == 0 {
            throw ProtocolError.connectionClosed
        }
        if first < 4 {
            try prefix.withUnsafeMutableBytes { buffer in
                try readExactly(into: UnsafeMutableRawBufferPointer(rebasing: buffer[first..<4]))
            }
        }
        let length =
            UInt32(prefix[0]) << 24 | UInt32(prefix[1]) << 16 | UInt32(prefix[2]) << 8
            | UInt32(prefix[3])
        guard length > 0 else { throw ProtocolError.emptyFrame }
        guard Int(length) <= maxFrameBytes else {
            throw ProtocolError.frameTooLarge(declared: length, limit: maxFrameBytes)
        }

        var json = Data(count: Int(length))
        try json.withUnsafeMutableBytes { try readExactly(into: $0) }

        let head: FrameHead
        do {
            head = try JSONDecoder().decode(FrameHead.self, from: json)
        } catch {
            throw ProtocolError.malformedFrame(describe(error))
        }
        guard head.v == FrameChannel.protocolVersion else {
            throw ProtocolError.unsupportedVersion(head.v)
        }
        return IncomingFrame(head: head, json: json)
    }

    /// Reads up to `buffer.count` raw bytes; returns 0 at end of stream.
    public func readRaw(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try readSome(buffer)
    }

    /// Fills `buffer` completely, throwing `truncated` when the stream ends first.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let count = try readSome(
                UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<buffer.count]))
            if count == 0 {
                throw ProtocolError.truncated(expected: buffer.count, received: offset)
            }
            offset += count
        }
    }

    /// Writes raw bytes, such as a file body.
    public func writeRaw(_ buffer: UnsafeRawBufferPointer) throws {
        try writeAll(buffer)
    }
}
