import Foundation

/// Error codes carried in `error` frames. The client maps each to one of its exit codes;
/// several codes share one, such as every policy or limit rejection.
public enum WireErrorCode: String, Codable, Sendable {
    case invalidRequest = "invalid-request"
    case unsupportedVersion = "unsupported-version"
    case staleTimestamp = "stale-timestamp"
    case replayedRequest = "replayed-request"
    case authenticationFailed = "authentication-failed"
    case permissionDenied = "permission-denied"
    case notFound = "not-found"
    case alreadyExists = "already-exists"
    case integrityFailure = "integrity-failure"
    case tooLarge = "too-large"
    case policyRejected = "policy-rejected"
    case blocked = "blocked"
    /// A session ticket that is expired, from another server key or no longer matches the
    /// user; the client logs in with the password instead.
    case sessionInvalid = "session-invalid"
    case busy = "busy"
    case internalError = "internal-error"
}

/// A failure of the wire protocol itself, or an error frame sent by the peer.
public enum ProtocolError: Error, Equatable, CustomStringConvertible {
    /// The peer closed the connection between frames.
    case connectionClosed
    /// The peer closed the connection inside a frame or a body.
    case truncated(expected: Int, received: Int)
    /// A frame declared a length above the limit; nothing was allocated for it.
    case frameTooLarge(declared: UInt32, limit: Int)
    case emptyFrame
    case malformedFrame(String)
    case unsupportedVersion(Int)
    case unexpectedMessage(expected: String, received: String)
    /// The peer replied with an `error` frame.
    case remote(code: WireErrorCode, message: String)

    public var description: String {
        switch self {
        case .connectionClosed:
            return "the peer closed the connection"
        case .truncated(let expected, let received):
            return "the peer closed the connection after \(received) of \(expected) bytes"
        case .frameTooLarge(let declared, let limit):
            return "frame of \(declared) bytes exceeds the limit of \(limit) bytes"
        case .emptyFrame:
            return "empty frame"
        case .malformedFrame(let detail):
            return "malformed frame: \(DisplayText.escaped(detail))"
        case .unsupportedVersion(let version):
            return "unsupported protocol version \(version); this build speaks version "
                + "\(FrameChannel.protocolVersion)"
        case .unexpectedMessage(let expected, let received):
            return "expected a \(expected) message, received \(DisplayText.escaped(received))"
        case .remote(_, let message):
            return message
        }
    }
}
