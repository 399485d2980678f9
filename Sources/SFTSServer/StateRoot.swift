import Foundation

/// The layout of a server state root (`--root`).
public struct StateRoot: Sendable {
    public let url: URL

    public init(_ url: URL) {
        self.url = url.standardizedFileURL
    }

    public var certificatesFolder: URL { url.appendingPathComponent("certificates") }
    public var caCertificate: URL { certificatesFolder.appendingPathComponent("ca_certificate.pem") }
    public var caKey: URL { certificatesFolder.appendingPathComponent("ca_key.pem") }
    public var serverCertificate: URL {
        certificatesFolder.appendingPathComponent("server_certificate.pem")
    }
    public var serverKey: URL { certificatesFolder.appendingPathComponent("server_key.pem") }
    public var hostCode: URL { certificatesFolder.appendingPathComponent("host_code") }
    /// The CA's current CRL, which the file service checks on every handshake.
    public var revocationList: URL { certificatesFolder.appendingPathComponent("crl.pem") }
    /// The revoked serial numbers the CRL is built from, and the last CRL number.
    public var revocations: URL { certificatesFolder.appendingPathComponent("revoked.json") }
    /// The key that one-time enrollment tokens are derived from.
    public var tokenKey: URL { certificatesFolder.appendingPathComponent("token_key") }
    /// Issued enrollment tokens: user, expiry and use.
    public var tokens: URL { url.appendingPathComponent("tokens.json") }
    /// Every certificate the CA issued, one PEM file per serial number.
    public var issuedFolder: URL { certificatesFolder.appendingPathComponent("issued") }
    /// The served files.
    public var directory: URL { url.appendingPathComponent("directory") }
    public var roles: URL { url.appendingPathComponent("roles.json") }
    public var users: URL { url.appendingPathComponent("users.json") }
    /// Uploader and SHA-256 of every file that arrived through `put`.
    public var fileRecords: URL { url.appendingPathComponent("files.json") }
    public var authFailures: URL { url.appendingPathComponent("auth_failures.json") }
    public var blockedAddresses: URL { url.appendingPathComponent("blocked_ip.json") }
    public var blockedPasswords: URL { url.appendingPathComponent("blocked_passwords.json") }
    public var logsFolder: URL { url.appendingPathComponent("logs") }
    public var serverLog: URL { logsFolder.appendingPathComponent("server.log") }
}
