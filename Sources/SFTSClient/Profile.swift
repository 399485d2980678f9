import Foundation
import SFTSCrypto
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// The client's home folder: `$SFTS_HOME`, else `$XDG_CONFIG_HOME/sfts`, else
/// `~/.config/sfts`. Folders are mode 0700 and files 0600.
public struct ClientHome: Sendable {
    public let url: URL

    public init(url: URL) {
        self.url = url.standardizedFileURL
    }

    /// Returns the home folder the environment selects.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> ClientHome
    {
        if let home = environment["SFTS_HOME"], !home.isEmpty {
            return ClientHome(url: URL(fileURLWithPath: home))
        }
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty {
            return ClientHome(url: URL(fileURLWithPath: config).appendingPathComponent("sfts"))
        }
        let user =
            environment["HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        return ClientHome(url: user.appendingPathComponent(".config/sfts"))
    }

    public var profilesFolder: URL { url.appendingPathComponent("profiles") }
    public var clientLog: URL { url.appendingPathComponent("logs/client.log") }

    public func profileFolder(_ name: String) -> URL {
        profilesFolder.appendingPathComponent(name)
    }
}

/// A profile's server address, ports and user, as profile.json stores them.
public struct ProfileSettings: Codable, Equatable, Sendable {
    public var server: String
    public var port: UInt16
    public var csrPort: UInt16
    public var user: String
    public var caFingerprint: String
    public var enrolledAt: String

    public init(
        server: String, port: UInt16, csrPort: UInt16, user: String, caFingerprint: String,
        enrolledAt: String
    ) {
        self.server = server
        self.port = port
        self.csrPort = csrPort
        self.user = user
        self.caFingerprint = caFingerprint
        self.enrolledAt = enrolledAt
    }
}

/// A client profile: settings, the CA certificate, the client certificate, and the client key
/// encrypted with the user's password.
public struct Profile: Sendable {
    public let name: String
    public let folder: URL
    /// The client home the profile belongs to.
    public let home: ClientHome
    public var settings: ProfileSettings

    static let settingsFile = "profile.json"
    static let caFile = "ca_certificate.pem"
    static let certificateFile = "client_certificate.pem"
    static let keyFile = "client_key.pem"

    public var caCertificateURL: URL { folder.appendingPathComponent(Profile.caFile) }
    public var certificateURL: URL { folder.appendingPathComponent(Profile.certificateFile) }
    public var keyURL: URL { folder.appendingPathComponent(Profile.keyFile) }

    public var sessionURL: URL { folder.appendingPathComponent("session.json") }
    public var sessionKeyURL: URL { folder.appendingPathComponent("session_key.pem") }

    private struct SessionFile: Codable {
        let ticket: String
        let expires: String
    }

    /// The open login session: its ticket and the client key stored with it, or nil when
    /// there is none or it expired.
    public func activeSession(now: Date = Date()) -> (ticket: String, key: PrivateKey, expires: Date)? {
        guard let data = try? Data(contentsOf: sessionURL),
            let session = try? JSONDecoder().decode(SessionFile.self, from: data),
            let expires = Timestamp.parse(session.expires), expires > now + 5,
            let pem = try? String(contentsOf: sessionKeyURL, encoding: .utf8),
            let key = try? PrivateKey(pem: pem, passphrase: nil, what: "the session key")
        else { return nil }
        return (session.ticket, key, expires)
    }

    /// Stores a session: the key first, unencrypted and mode 0600, then the ticket.
    func saveSession(ticket: String, expires: Date, key: PrivateKey) throws {
        try Profile.writePrivate(Data(try key.pem(passphrase: nil).utf8), sessionKeyURL)
        let data = try JSONEncoder().encode(SessionFile(ticket: ticket, expires: Timestamp.format(expires)))
        try Profile.writePrivate(data, sessionURL)
    }

    /// True when a session ticket or key file exists, expired or not.
    public var hasSessionFiles: Bool {
        FileManager.default.fileExists(atPath: sessionURL.path)
            || FileManager.default.fileExists(atPath: sessionKeyURL.path)
    }

    /// Ends the login session on this side by deleting its ticket and key.
    public func clearSession() {
        unlink(sessionURL.path)
        unlink(sessionKeyURL.path)
    }

    /// Returns nil when `name` is a valid profile name, otherwise the reason it is not.
    public static func problem(withName name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 64 else {
            return "a profile name has 1 to 64 characters"
        }
        guard !name.hasPrefix("."),
            name.unicodeScalars.allSatisfy({
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                    || $0 == "." || $0 == "_" || $0 == "-"
            })
        else {
            return "a profile name may contain only letters, digits, '.', '_' and '-', and may "
                + "not start with '.'"
        }
        return nil
    }

    /// Loads profile `name` from `home`.
    public static func load(_ name: String, home: ClientHome) throws -> Profile {
        if let problem = problem(withName: name) {
            throw ClientError(.local, "invalid profile name '\(name)': \(problem)")
        }
        let folder = home.profileFolder(name)
        let settingsURL = folder.appendingPathComponent(settingsFile)
        guard let data = try? Data(contentsOf: settingsURL) else {
            throw ClientError(
                .local,
                "profile '\(name)' not found in \(home.profilesFolder.path); run 'sfts enroll "
                    + "--server HOST --user NAME"
                    + (name == "default" ? "" : " --profile \(name)")
                    + "' first, or pick another with --profile")
        }
        do {
            let settings = try JSONDecoder().decode(ProfileSettings.self, from: data)
            return Profile(name: name, folder: folder, home: home, settings: settings)
        } catch {
            throw ClientError(.local, "\(settingsURL.path): invalid profile settings: \(error)")
        }
    }

    /// Loads the CA certificate and checks it against the fingerprint recorded at enrollment.
    public func caCertificate() throws -> Certificate {
        let certificate = try readCertificate(caCertificateURL)
        guard certificate.sha256Fingerprint.colonHexString == settings.caFingerprint else {
            throw ClientError(
                .local,
                "\(caCertificateURL.path) does not match the CA fingerprint recorded at "
                    + "enrollment; the profile was changed, so enroll again")
        }
        return certificate
    }

    public func clientCertificate() throws -> Certificate {
        try readCertificate(certificateURL)
    }

    /// Decrypts the client key with the user's (normalised) password.
    public func clientKey(password: String) throws -> PrivateKey {
        let pem: String
        do {
            pem = try String(contentsOf: keyURL, encoding: .utf8)
        } catch {
            throw ClientError(.local, "cannot read \(keyURL.path): \(error.localizedDescription)")
        }
        do {
            return try PrivateKey(pem: pem, passphrase: password, what: "the client key")
        } catch CryptoError.wrongPassphrase {
            throw ClientError(
                .authentication,
                "wrong password for '\(settings.user)': it does not decrypt the client key of "
                    + "profile '\(name)'")
        }
    }

    private func readCertificate(_ url: URL) throws -> Certificate {
        do {
            return try Certificate(contentsOf: url)
        } catch {
            throw ClientError(.local, "\(error)")
        }
    }

    /// Writes a complete profile folder atomically: every file goes into a temporary folder,
    /// which then replaces the old profile with one rename.
    static func write(
        name: String, home: ClientHome, settings: ProfileSettings, caCertificate: Certificate,
        certificate: Certificate, encryptedKeyPEM: String
    ) throws -> Profile {
        let fileManager = FileManager.default
        try fileManager.createDirectory(
            at: home.profilesFolder, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        chmod(home.url.path, 0o700)
        let staging = home.profilesFolder.appendingPathComponent(".\(name).tmp-\(UUID().uuidString)")
        try fileManager.createDirectory(
            at: staging, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        var committed = false
        defer {
            if !committed { try? fileManager.removeItem(at: staging) }
        }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try writePrivate(try encoder.encode(settings), staging.appendingPathComponent(settingsFile))
        try writePrivate(Data(caCertificate.pem.utf8), staging.appendingPathComponent(caFile))
        try writePrivate(Data(certificate.pem.utf8), staging.appendingPathComponent(certificateFile))
        try writePrivate(Data(encryptedKeyPEM.utf8), staging.appendingPathComponent(keyFile))

        let target = home.profileFolder(name)
        if fileManager.fileExists(atPath: target.path) {
            let old = home.profilesFolder.appendingPathComponent(".\(name).old-\(UUID().uuidString)")
            try fileManager.moveItem(at: target, to: old)
            try fileManager.moveItem(at: staging, to: target)
            try? fileManager.removeItem(at: old)
        } else {
            try fileManager.moveItem(at: staging, to: target)
        }
        committed = true
        return Profile(name: name, folder: target, home: home, settings: settings)
    }

    /// Writes a re-encrypted client key beside the current one and returns its path, for
    /// ``commitStagedKey(_:)`` once the server has accepted the new password.
    func stageKey(encryptedKeyPEM: String) throws -> URL {
        let staged = folder.appendingPathComponent("\(Profile.keyFile).new")
        try Profile.writePrivate(Data(encryptedKeyPEM.utf8), staged)
        return staged
    }

    /// Puts a staged key in place with one rename.
    func commitStagedKey(_ staged: URL) throws {
        guard rename(staged.path, keyURL.path) == 0 else {
            throw ClientError(
                .local,
                "the server changed the password, but \(keyURL.path) could not be replaced "
                    + "(\(String(cString: strerror(errno)))); the key for the new password is in "
                    + "\(staged.path): move it over \(Profile.keyFile)")
        }
    }

    func discardStagedKey(_ staged: URL) {
        unlink(staged.path)
    }

    /// Writes a file with mode 0600 and fsyncs it.
    static func writePrivate(_ data: Data, _ url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ClientError(.local, "cannot create \(url.path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let failed = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return true
                }
                offset += written
            }
            return fsync(descriptor) != 0
        }
        if failed {
            throw ClientError(.local, "cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
    }
}
