import Foundation

// Frame bodies. Binary values travel as standard base64, digests as lowercase hex, sizes in
// bytes and times as ISO 8601 UTC.

/// The body of an `error` frame.
public struct ErrorBody: Codable, Sendable {
    public let code: WireErrorCode
    public let message: String

    public init(code: WireErrorCode, message: String) {
        self.code = code
        self.message = message
    }
}

/// A body with no fields.
public struct EmptyBody: Codable, Sendable {
    public init() {}
}

// MARK: - Enrollment

/// The client's first enrollment message: the user name it wants, a fresh nonce, and the id
/// of a one-time token when it proves a token in place of the host code.
public struct EnrollStart: Codable, Sendable {
    public let user: String
    public let nonce: String
    public let token: String?

    public init(user: String, nonce: String, token: String? = nil) {
        self.user = user
        self.nonce = nonce
        self.token = token
    }
}

/// The server's nonce for the enrollment proofs, and its CA certificate, which a client with
/// a pinned fingerprint checks before it proves anything.
public struct EnrollChallenge: Codable, Sendable {
    public let nonce: String
    public let caCertificate: String

    public init(nonce: String, caCertificate: String) {
        self.nonce = nonce
        self.caCertificate = caCertificate
    }
}

/// The client's proof that it has the host code, bound to this TLS channel.
public struct EnrollProof: Codable, Sendable {
    public let proof: String

    public init(proof: String) {
        self.proof = proof
    }
}

/// The server's proof that it has the host code or token secret; it covers the CA
/// certificate sent in the challenge.
public struct EnrollAccepted: Codable, Sendable {
    public let proof: String

    public init(proof: String) {
        self.proof = proof
    }
}

/// The client's CSR and the password to register, sent only after both proofs passed.
public struct EnrollRequest: Codable, Sendable {
    public let csr: String
    public let password: String

    public init(csr: String, password: String) {
        self.csr = csr
        self.password = password
    }
}

/// The issued client certificate and the role the new user starts with.
public struct EnrollCompleted: Codable, Sendable {
    public let certificate: String
    public let role: String

    public init(certificate: String, role: String) {
        self.certificate = certificate
        self.role = role
    }
}

// MARK: - Login

/// The client's first login message. `user` must equal the client certificate's CN.
///
/// With `session`, a ticket from an earlier `open-session`, the server answers with
/// `login-accepted` at once, and no password is involved.
public struct LoginStart: Codable, Sendable {
    public let user: String
    public let nonce: String
    public let session: String?

    public init(user: String, nonce: String, session: String? = nil) {
        self.user = user
        self.nonce = nonce
        self.session = session
    }
}

/// A request for a login session ticket, valid for `ttl` seconds at most.
public struct OpenSessionRequest: Codable, Sendable {
    public let ttl: Int

    public init(ttl: Int) {
        self.ttl = ttl
    }
}

/// A session ticket and its expiry (ISO 8601).
public struct SessionOpened: Codable, Sendable {
    public let ticket: String
    public let expires: String

    public init(ticket: String, expires: String) {
        self.ticket = ticket
        self.expires = expires
    }
}

/// The salt and iteration count of the user's verifier, and the server's nonce.
public struct LoginChallenge: Codable, Sendable {
    public let nonce: String
    public let salt: String
    public let iterations: Int

    public init(nonce: String, salt: String, iterations: Int) {
        self.nonce = nonce
        self.salt = salt
        self.iterations = iterations
    }
}

/// The client proof: ClientKey XOR HMAC(StoredKey, AuthMessage).
public struct LoginProof: Codable, Sendable {
    public let proof: String

    public init(proof: String) {
        self.proof = proof
    }
}

/// The server signature HMAC(ServerKey, AuthMessage), which proves the server has the
/// verifier, and the role and permissions of the session.
public struct LoginAccepted: Codable, Sendable {
    public let signature: String
    public let role: String
    public let permissions: [String]
    /// Seconds the server lets a connection stay silent, so an interactive client knows how
    /// often to send `ping`; absent from servers that predate it.
    public let idleTimeout: Int?

    public init(signature: String, role: String, permissions: [String], idleTimeout: Int? = nil) {
        self.signature = signature
        self.role = role
        self.permissions = permissions
        self.idleTimeout = idleTimeout
    }
}

// MARK: - Commands

/// A listing request for a folder; an empty path is the top of the served directory.
public struct ListRequest: Codable, Sendable {
    public let path: String
    public let long: Bool

    public init(path: String, long: Bool) {
        self.path = path
        self.long = long
    }
}

/// One entry of a listing. Uploader and SHA-256 are present in long listings of files that
/// arrived through `put`.
public struct ListEntry: Codable, Sendable, Equatable {
    public let name: String
    public let kind: String
    public let size: UInt64
    public let modified: String
    public let uploader: String?
    public let sha256: String?

    public static let fileKind = "file"
    public static let folderKind = "folder"

    public init(
        name: String, kind: String, size: UInt64, modified: String, uploader: String?,
        sha256: String?
    ) {
        self.name = name
        self.kind = kind
        self.size = size
        self.modified = modified
        self.uploader = uploader
        self.sha256 = sha256
    }
}

/// One page of a listing; `more` is true when another `list-result` frame follows.
public struct ListResult: Codable, Sendable {
    public let entries: [ListEntry]
    public let more: Bool

    public init(entries: [ListEntry], more: Bool) {
        self.entries = entries
        self.more = more
    }
}

/// An upload request. `size` raw bytes follow the server's `put-ready`, then a `put-record`.
public struct PutRequest: Codable, Sendable {
    public let name: String
    public let size: UInt64
    public let force: Bool

    public init(name: String, size: UInt64, force: Bool) {
        self.name = name
        self.size = size
        self.force = force
    }
}

/// The signed record that ends an upload or a download.
///
/// `signature` is RSA-PSS over ``SignedRecord`` bytes built from the transfer's fields.
public struct TransferRecord: Codable, Sendable {
    public let sha256: String
    public let signature: String
    public let signer: String

    public init(sha256: String, signature: String, signer: String) {
        self.sha256 = sha256
        self.signature = signature
        self.signer = signer
    }
}

/// The server's confirmation that an upload is stored under `name`.
public struct PutCompleted: Codable, Sendable {
    public let name: String
    public let size: UInt64
    public let sha256: String

    public init(name: String, size: UInt64, sha256: String) {
        self.name = name
        self.size = size
        self.sha256 = sha256
    }
}

/// A request naming one remote file, for `get` and `remove`.
public struct PathRequest: Codable, Sendable {
    public let name: String

    public init(name: String) {
        self.name = name
    }
}

/// The size of the file about to follow as raw bytes, and who uploaded it when known.
public struct GetReady: Codable, Sendable {
    public let size: UInt64
    public let uploader: String?

    public init(size: UInt64, uploader: String?) {
        self.size = size
        self.uploader = uploader
    }
}

/// A renewal request: a CSR for a new key, signed by it, for the logged-in user.
public struct RenewRequest: Codable, Sendable {
    public let csr: String

    public init(csr: String) {
        self.csr = csr
    }
}

/// The renewed certificate. The server ends the session after it, since the connection's
/// certificate is no longer the user's current one.
public struct RenewResult: Codable, Sendable {
    public let certificate: String

    public init(certificate: String) {
        self.certificate = certificate
    }
}

/// A password change request; the server checks the policy and stores a new verifier.
public struct ChangePasswordRequest: Codable, Sendable {
    public let password: String

    public init(password: String) {
        self.password = password
    }
}
