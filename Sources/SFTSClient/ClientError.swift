import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS

/// A client failure, sorted into the kinds that get distinct exit codes.
public struct ClientError: Error, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Wrong password or host code, or a certificate the server refused.
        case authentication
        /// The user's role lacks the permission.
        case permission
        case notFound
        case alreadyExists
        /// A digest or signature did not match.
        case integrity
        /// Connecting, TLS, or the peer broke the protocol.
        case network
        /// The server refused the request: a policy, a limit, a bad timestamp or name.
        case rejected
        /// A local file, profile or setting is missing or unusable.
        case local
        /// The user typed a value that cannot be right, such as a malformed host code.
        case invalidInput
    }

    public let kind: Kind
    public let message: String
    /// The server's error code when the failure came in an `error` frame.
    public let remoteCode: WireErrorCode?

    public init(_ kind: Kind, _ message: String, remoteCode: WireErrorCode? = nil) {
        self.kind = kind
        self.message = message
        self.remoteCode = remoteCode
    }

    public var description: String { message }

    /// True when the server refused a session ticket, so a password login may follow.
    var isSessionRejection: Bool {
        remoteCode == .sessionInvalid
    }

    /// Wraps any error from the layers below in a ``ClientError`` of the right kind.
    static func wrap(_ error: Error) -> ClientError {
        switch error {
        case let error as ClientError:
            return error
        case let error as ProtocolError:
            if case .remote(let code, let message) = error {
                // The message comes from the server; it must not drive the user's terminal.
                return ClientError(kind(for: code), DisplayText.escaped(message), remoteCode: code)
            }
            return ClientError(.network, "protocol error: \(error)")
        case let error as TLSError:
            if case .certificateRejectedByPeer(let reason) = error {
                if reason.contains("revoked") {
                    return ClientError(
                        .authentication,
                        "the server rejected the client certificate because it was revoked; ask the operator, "
                            + "who can give you a token to enroll again")
                }
                return ClientError(
                    .authentication,
                    "the server rejected the client certificate (\(reason)); enroll again or "
                        + "ask the operator")
            }
            return ClientError(.network, error.description)
        case let error as NetworkError:
            return ClientError(.network, error.description)
        case let error as CryptoError:
            if case .wrongPassphrase = error {
                return ClientError(.authentication, "wrong password: \(error)")
            }
            return ClientError(.local, error.description)
        case let error as InvalidNameError:
            return ClientError(.rejected, error.description)
        case let error as PasswordPolicyError:
            return ClientError(.rejected, error.description)
        default:
            return ClientError(.local, String(describing: error))
        }
    }

    /// Validates a remote name typed by the user. One trailing `/`, as `ls` prints after a
    /// folder name, is dropped when `allowTrailingSlash` is set.
    static func remotePath(_ text: String, allowRoot: Bool = false, allowTrailingSlash: Bool = false) throws
        -> RemotePath
    {
        var name = text
        if allowTrailingSlash, name.count > 1, name.hasSuffix("/") {
            name.removeLast()
        }
        do {
            return try RemotePath(name, allowRoot: allowRoot)
        } catch {
            throw wrap(error)
        }
    }

    static func kind(for code: WireErrorCode) -> Kind {
        switch code {
        case .authenticationFailed, .blocked, .sessionInvalid: return .authentication
        case .permissionDenied: return .permission
        case .notFound: return .notFound
        case .alreadyExists: return .alreadyExists
        case .integrityFailure: return .integrity
        case .internalError, .busy: return .network
        case .invalidRequest, .unsupportedVersion, .staleTimestamp, .replayedRequest, .tooLarge,
            .policyRejected:
            return .rejected
        }
    }
}
