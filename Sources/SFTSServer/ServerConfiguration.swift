import Foundation
import SFTSCrypto

/// Limits that keep one client from exhausting the server.
public struct ServerLimits: Sendable {
    /// Seconds a client has to complete the TLS handshake.
    public var handshakeTimeout: TimeInterval = 10
    /// Seconds a connection may stay silent while the server waits for it, and the time
    /// allowed to receive one whole frame.
    public var idleTimeout: TimeInterval = 60
    /// The largest frame a client may send, in bytes.
    public var maxFrameBytes = 64 * 1024
    /// The largest file a client may upload, in bytes.
    public var maxFileBytes: UInt64 = 64 * 1024 * 1024 * 1024
    /// Connections open at once, over both services.
    public var maxConnections = 512
    /// Connections open at once from one address.
    public var maxConnectionsPerAddress = 64

    public init() {}
}

/// The settings of `sfts serve`.
public struct ServerConfiguration: Sendable {
    public var root: StateRoot
    /// The numeric address to listen on; `::` accepts IPv4 and IPv6 clients.
    public var listenAddress = "::"
    public var filePort: UInt16 = 8443
    public var enrollmentPort: UInt16 = 8444
    public var runsFileService = true
    public var runsEnrollmentService = true
    public var limits = ServerLimits()
    /// How far a request timestamp may be from the server clock, in either direction.
    public var timestampTolerance: TimeInterval = 30
    /// Lifetime of issued client certificates, in seconds.
    public var clientCertificateLifetime: TimeInterval = 90 * 86400
    /// When authentication failures block an address.
    public var blockPolicy = BlockPolicy()
    /// PBKDF2 iterations for verifiers made at enrollment and password change.
    public var verifierIterations = PasswordVerifier.defaultIterations

    public init(root: StateRoot) {
        self.root = root
    }
}
