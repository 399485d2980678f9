import Foundation
import SFTSClient
import SFTSCrypto
import SFTSProtocol
import SFTSServer
import SFTSTLS

/// Process exit codes, documented in sfts(1).
public enum ExitCode: Int32, CaseIterable, Sendable {
    case success = 0
    /// A failure with no more specific code, such as unreadable server state.
    case failure = 1
    /// A command-line mistake, or a secret that could not be read.
    case usage = 2
    /// Wrong password, PKI passphrase or host code, or a certificate the server refused.
    case authentication = 3
    /// The user's role lacks the permission.
    case permissionDenied = 4
    case notFound = 5
    case alreadyExists = 6
    /// A SHA-256 or signature check failed; nothing was kept.
    case integrity = 7
    /// Connecting, TLS, or the connection broke.
    case network = 8
    /// The server refused the request: password or CSR policy, a limit, a stale timestamp, an
    /// invalid name.
    case rejected = 9

    /// Classifies an error that reached the top level: its exit code and the message to print.
    static func classify(_ error: Error) -> (ExitCode, String) {
        switch error {
        case let error as UsageError:
            return (.usage, error.message)
        case let error as ClientError:
            return (code(for: error.kind), error.message)
        case let error as CryptoError:
            if case .wrongPassphrase = error {
                return (.authentication, error.description)
            }
            return (.failure, error.description)
        case let error as UserStoreError:
            switch error {
            case .alreadyExists: return (.alreadyExists, error.description)
            case .notFound: return (.notFound, error.description)
            }
        case let error as NetworkError:
            return (.network, error.description)
        case let error as TLSError:
            return (.network, error.description)
        case let error as StateError:
            return (.failure, error.description)
        case let error as CustomStringConvertible:
            return (.failure, error.description)
        default:
            return (.failure, error.localizedDescription)
        }
    }

    static func code(for kind: ClientError.Kind) -> ExitCode {
        switch kind {
        case .authentication: return .authentication
        case .permission: return .permissionDenied
        case .notFound: return .notFound
        case .alreadyExists: return .alreadyExists
        case .integrity: return .integrity
        case .network: return .network
        case .rejected: return .rejected
        case .local: return .failure
        case .invalidInput: return .usage
        }
    }
}
