import Foundation
import SFTSCrypto
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// The keys and certificates a running server needs, decrypted with the PKI passphrase.
public final class ServerPKI: @unchecked Sendable {
    public let authority: CertificateAuthority
    public let serverCertificate: Certificate
    public let serverKey: PrivateKey
    /// The host code in canonical form (see ``HostCode/normalize(_:)``).
    public let hostCode: String

    public init(
        authority: CertificateAuthority, serverCertificate: Certificate, serverKey: PrivateKey,
        hostCode: String
    ) {
        self.authority = authority
        self.serverCertificate = serverCertificate
        self.serverKey = serverKey
        self.hostCode = hostCode
    }

    /// Loads the CA and server credentials from `root` and checks that they belong together.
    public static func load(root: StateRoot, passphrase: String) throws -> ServerPKI {
        for file in [root.caCertificate, root.caKey, root.serverCertificate, root.serverKey, root.hostCode]
        where !FileManager.default.fileExists(atPath: file.path) {
            throw StateError(
                path: file.path,
                reason: "missing; run 'sfts ca init --root \(root.url.path)' first")
        }
        let caCertificate = try Certificate(contentsOf: root.caCertificate)
        let caKey = try PrivateKey(
            pem: try readText(root.caKey), passphrase: passphrase,
            what: "\(root.caKey.path) with this PKI passphrase")
        let authority = try CertificateAuthority(certificate: caCertificate, key: caKey)
        let serverCertificate = try Certificate(contentsOf: root.serverCertificate)
        let serverKey = try PrivateKey(
            pem: try readText(root.serverKey), passphrase: passphrase,
            what: "\(root.serverKey.path) with this PKI passphrase")
        guard serverCertificate.matches(serverKey) else {
            throw StateError(
                path: root.serverKey.path, reason: "does not match server_certificate.pem")
        }
        do {
            try serverCertificate.verify(trusting: [caCertificate], purpose: .tlsServer)
        } catch {
            throw StateError(path: root.serverCertificate.path, reason: "\(error)")
        }
        guard let hostCode = HostCode.normalize(try readText(root.hostCode)) else {
            throw StateError(path: root.hostCode.path, reason: "does not hold a valid host code")
        }
        return ServerPKI(
            authority: authority, serverCertificate: serverCertificate, serverKey: serverKey,
            hostCode: hostCode)
    }

    /// Loads only the CA certificate and key, for commands that sign but do not serve.
    public static func loadAuthority(root: StateRoot, passphrase: String) throws -> CertificateAuthority {
        for file in [root.caCertificate, root.caKey] where !FileManager.default.fileExists(atPath: file.path) {
            throw StateError(
                path: file.path, reason: "missing; pass --root with the server state root, or run 'sfts ca init'")
        }
        let key = try PrivateKey(
            pem: try readText(root.caKey), passphrase: passphrase, what: "\(root.caKey.path) with this PKI passphrase")
        return try CertificateAuthority(certificate: try Certificate(contentsOf: root.caCertificate), key: key)
    }

    static func readText(_ url: URL) throws -> String {
        do {
            return try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw StateError(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
    }
}

/// Settings for `sfts ca init`.
public struct CAInitOptions: Sendable {
    /// Host names and IP addresses for the server certificate's SANs.
    public var hosts: [String]
    public var keyBits: Int
    public var passphrase: String
    /// Replace an existing CA.
    public var force: Bool
    public var caValidityDays = 3650
    public var serverValidityDays = 397

    public init(hosts: [String], keyBits: Int, passphrase: String, force: Bool) {
        self.hosts = hosts
        self.keyBits = keyBits
        self.passphrase = passphrase
        self.force = force
    }

    /// localhost, 127.0.0.1, ::1 and this machine's host name.
    public static var defaultHosts: [String] {
        var hosts = ["localhost", "127.0.0.1", "::1"]
        let name = ProcessInfo.processInfo.hostName
        if !name.isEmpty, !hosts.contains(name) {
            hosts.append(name)
        }
        return hosts
    }
}

/// The host code, fingerprint, names and files that `sfts ca init` created.
public struct CAInitResult: Sendable {
    /// The host code in its printed form.
    public let hostCode: String
    public let caFingerprint: String
    public let serverNames: [String]
    public let createdFiles: [String]
}

/// Bootstraps a state root: CA, server certificate, host code and default policy files.
public enum CAInitializer {
    public static let minimumPassphraseLength = 15

    public static func run(root: StateRoot, options: CAInitOptions) throws -> CAInitResult {
        try checkPassphrase(options.passphrase, root: root)
        if !options.force, FileManager.default.fileExists(atPath: root.caCertificate.path) {
            throw StateError(
                path: root.caCertificate.path,
                reason: "a CA already exists; pass --force to replace it, which invalidates "
                    + "every certificate it issued")
        }
        let (dnsNames, ipAddresses) = try splitHosts(options.hosts)

        let hostName = ProcessInfo.processInfo.hostName
        let caKey = try PrivateKey.generateRSA(bits: options.keyBits)
        let authority = try CertificateAuthority.create(
            commonName: "sfts CA \(hostName)", key: caKey, validityDays: options.caValidityDays)
        let serverKey = try PrivateKey.generateRSA(bits: options.keyBits)
        let serverCertificate = try authority.issueServerCertificate(
            commonName: dnsNames.first ?? ipAddresses.first ?? hostName,
            publicKey: serverKey.publicKey, dnsNames: dnsNames, ipAddresses: ipAddresses,
            validityDays: options.serverValidityDays)
        return try install(
            root: root, authority: authority, serverCertificate: serverCertificate, serverKey: serverKey,
            passphrase: options.passphrase)
    }

    /// Sets up a state root around a CA and a server certificate made elsewhere, for example
    /// with the openssl command line: checks that they fit together and the TLS policy, then
    /// writes them as `ca init` would, keys encrypted with the PKI passphrase.
    public static func importExisting(
        root: StateRoot, caCertificate: Certificate, caKey: PrivateKey, serverCertificate: Certificate,
        serverKey: PrivateKey, passphrase: String, force: Bool
    ) throws -> CAInitResult {
        try checkPassphrase(passphrase, root: root)
        if !force, FileManager.default.fileExists(atPath: root.caCertificate.path) {
            throw StateError(
                path: root.caCertificate.path,
                reason: "a CA already exists; pass --force to replace it, which invalidates every certificate it issued"
            )
        }
        let authority = try CertificateAuthority(certificate: caCertificate, key: caKey)
        guard caCertificate.allowsCRLSigning else {
            throw StateError(
                path: "import",
                reason: "the CA certificate's key usage lacks cRLSign, so its CRL would be rejected; "
                    + "reissue it with keyUsage=critical,keyCertSign,cRLSign")
        }
        guard caKey.publicKey.isRSA, caKey.bits >= PrivateKey.minimumRSABits,
            serverKey.publicKey.isRSA, serverKey.bits >= PrivateKey.minimumRSABits
        else {
            throw StateError(path: "import", reason: "the CA and server keys must be RSA of at least 2048 bits")
        }
        guard serverCertificate.matches(serverKey) else {
            throw StateError(path: "import", reason: "the server key does not match the server certificate")
        }
        do {
            try serverCertificate.verify(trusting: [caCertificate], purpose: .tlsServer)
        } catch {
            throw StateError(
                path: "import",
                reason: "the server certificate does not verify against the CA for TLS server use: \(error)")
        }
        return try install(
            root: root, authority: authority, serverCertificate: serverCertificate, serverKey: serverKey,
            passphrase: passphrase)
    }

    /// Issues a new server key and certificate for `hosts` from the CA in `root`, and writes
    /// them in place of the current ones; a running server switches on SIGHUP.
    public static func rotateServerCertificate(
        root: StateRoot, hosts: [String], keyBits: Int, passphrase: String, validityDays: Int = 397
    ) throws -> Certificate {
        let authority = try ServerPKI.loadAuthority(root: root, passphrase: passphrase)
        let (dnsNames, ipAddresses) = try splitHosts(hosts)
        let serverKey = try PrivateKey.generateRSA(bits: keyBits)
        let certificate = try authority.issueServerCertificate(
            commonName: dnsNames.first ?? ipAddresses.first ?? "sfts server", publicKey: serverKey.publicKey,
            dnsNames: dnsNames, ipAddresses: ipAddresses, validityDays: validityDays)
        try FolderIssuedCertificateStore(folder: root.issuedFolder).record(certificate)
        // The key goes first: a server reloading between the two writes fails to pair them and
        // keeps its current credentials, rather than serving a certificate without its key.
        try AtomicFile.write(Data(try serverKey.pem(passphrase: passphrase).utf8), to: root.serverKey)
        try AtomicFile.write(Data(certificate.pem.utf8), to: root.serverCertificate, permissions: 0o644)
        return certificate
    }

    private static func checkPassphrase(_ passphrase: String, root: StateRoot) throws {
        let passphraseLength = passphrase.unicodeScalars.count
        guard passphraseLength >= minimumPassphraseLength else {
            throw StateError(
                path: root.caKey.path,
                reason: "the PKI passphrase has \(passphraseLength) characters; use at least "
                    + "\(minimumPassphraseLength)")
        }
    }

    /// Writes the PKI, a fresh host code, token key and empty CRL, and the default policy
    /// files that are missing.
    private static func install(
        root: StateRoot, authority: CertificateAuthority, serverCertificate: Certificate, serverKey: PrivateKey,
        passphrase: String
    ) throws -> CAInitResult {
        let fileManager = FileManager.default
        for (folder, mode) in [
            (root.certificatesFolder, 0o700), (root.issuedFolder, 0o700), (root.directory, 0o750),
            (root.logsFolder, 0o700),
        ] {
            try fileManager.createDirectory(
                at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
        }

        // Installing the same CA again, as to replace only the server certificate, keeps its
        // revocations, host code and token key; a different CA starts afresh, since the
        // serials, codes and tokens of the old one mean nothing to it.
        let sameCA =
            (try? Certificate(contentsOf: root.caCertificate))?.sha256Fingerprint
            == authority.certificate.sha256Fingerprint
        let existingCode =
            sameCA ? (try? ServerPKI.readText(root.hostCode)).flatMap { HostCode.normalize($0) } : nil
        let hostCode = existingCode.map(HostCode.grouped) ?? HostCode.format(randomBytes: SecureRandom.bytes(20))
        try AtomicFile.write(Data(try authority.key.pem(passphrase: passphrase).utf8), to: root.caKey)
        try AtomicFile.write(Data(try serverKey.pem(passphrase: passphrase).utf8), to: root.serverKey)
        try AtomicFile.write(Data(authority.certificate.pem.utf8), to: root.caCertificate, permissions: 0o644)
        try AtomicFile.write(Data(serverCertificate.pem.utf8), to: root.serverCertificate, permissions: 0o644)
        try AtomicFile.write(Data((hostCode + "\n").utf8), to: root.hostCode)
        if !sameCA || !fileManager.fileExists(atPath: root.tokenKey.path) {
            try AtomicFile.write(Data((SecureRandom.bytes(32).hexString + "\n").utf8), to: root.tokenKey)
        }
        if !sameCA {
            try JSONFile<RevocationIndex>(url: root.revocations, empty: { .empty }).write(.empty)
        }
        try RevocationListFile.write(
            root: root, authority: authority, store: JSONRevocationStore(url: root.revocations))
        try FolderIssuedCertificateStore(folder: root.issuedFolder).record(serverCertificate)
        var created = [
            root.caCertificate.path, root.caKey.path, root.serverCertificate.path,
            root.serverKey.path, root.hostCode.path, root.tokenKey.path, root.revocationList.path,
        ]

        if !fileManager.fileExists(atPath: root.roles.path) {
            try AtomicFile.write(try RolePolicy.defaults.json(), to: root.roles, permissions: 0o644)
            created.append(root.roles.path)
        }
        if !fileManager.fileExists(atPath: root.blockedPasswords.path) {
            try writeDefaultBlockedPasswords(to: root.blockedPasswords)
            created.append(root.blockedPasswords.path)
        }
        if !fileManager.fileExists(atPath: root.users.path) {
            try JSONFile<[String: UserRecord]>(url: root.users, empty: { [:] }).write([:])
            created.append(root.users.path)
        }

        return CAInitResult(
            hostCode: hostCode, caFingerprint: authority.certificate.sha256Fingerprint.colonHexString,
            serverNames: serverCertificate.subjectAlternativeNames, createdFiles: created)
    }

    /// Sorts hosts into DNS names and IP addresses, rejecting anything that is neither.
    static func splitHosts(_ hosts: [String]) throws -> (dns: [String], ip: [String]) {
        var dnsNames: [String] = []
        var ipAddresses: [String] = []
        for host in hosts where !host.isEmpty {
            if isIPAddress(host) {
                if !ipAddresses.contains(host) { ipAddresses.append(host) }
            } else if isDNSName(host) {
                let lowered = host.lowercased()
                if !dnsNames.contains(lowered) { dnsNames.append(lowered) }
            } else {
                throw StateError(
                    path: "--host",
                    reason: "invalid host \(RemotePath.quoted(host)); give a DNS name or an IP address")
            }
        }
        guard !dnsNames.isEmpty || !ipAddresses.isEmpty else {
            throw StateError(path: "--host", reason: "at least one host name is needed")
        }
        return (dnsNames, ipAddresses)
    }

    /// Returns true for a numeric IPv4 or IPv6 address.
    public static func isIPAddress(_ text: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, text, &buffer) == 1 || inet_pton(AF_INET6, text, &buffer) == 1
    }

    static func isDNSName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy {
                    ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                        || $0 == "-"
                }
        }
    }

    static func writeDefaultBlockedPasswords(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted]
        var data = try encoder.encode(BlockedPasswords.defaults)
        data.append(0x0A)
        try AtomicFile.write(data, to: url, permissions: 0o644)
    }
}

/// The list of passwords refused outright, from blocked_passwords.json (a JSON array of
/// strings). Passwords shorter than the minimum length are refused anyway, so the defaults
/// are long passwords known from breach corpora and keyboard walks.
public enum BlockedPasswords {
    public static func load(from url: URL) throws -> Set<String> {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let data = try Data(contentsOf: url)
        do {
            return Set(try JSONDecoder().decode([String].self, from: data))
        } catch {
            throw StateError(path: url.path, reason: "invalid JSON; expected an array of strings")
        }
    }

    public static let defaults: [String] = [
        "passwordpassword", "password1234567", "password12345678", "password123456789",
        "passwordpassword1", "p@ssw0rdp@ssw0rd", "123456789012345", "1234567890123456",
        "12345678901234567890", "123456789123456", "111111111111111", "000000000000000",
        "qwertyuiopasdfg", "qwertyuiopasdfgh", "qwertyuiopasdfghjkl", "qwertyuiop123456",
        "qwerty123456789", "1q2w3e4r5t6y7u8i", "1q2w3e4r5t6y7u8i9o0p", "1qaz2wsx3edc4rfv",
        "zaq12wsxcde34rfv", "qazwsxedcrfvtgb", "qazwsxedcrfvtgbyhn", "asdfghjklqwertyu",
        "abcdefghijklmno", "abcdefghijklmnop", "abcdefghijklmnopqrstuvwxyz",
        "iloveyouiloveyou", "iloveyou1234567", "letmeinletmein1", "letmeinletmein!",
        "trustno1trustno1", "changemechangeme", "changeme1234567", "welcome12345678",
        "welcome123456789", "welcomewelcome1", "administrator1", "administrator123",
        "administrator1234", "adminadminadmin", "admin1234567890", "rootrootrootroot",
        "correcthorsebatterystaple", "correct horse battery staple", "thequickbrownfox",
        "thequickbrownfoxjumpsoverthelazydog", "football12345678", "baseball12345678",
        "superman12345678", "starwarsstarwars", "monkey123456789", "dragon123456789",
        "sunshine1234567", "princess1234567", "michael12345678", "master123456789",
        "whatever1234567", "computer1234567", "internet1234567", "summer2024summer",
        "winter2024winter", "spring2025spring", "autumn2025autumn", "december1234567",
        "secretpassword1", "mysecretpassword", "supersecretpassword", "verysecurepassword",
        "securepassword123", "strongpassword123", "thisismypassword", "ilovemyfamily123",
        "1234qwerasdfzxcv", "q1w2e3r4t5y6u7i8", "a1b2c3d4e5f6g7h8", "0987654321098765",
        "987654321987654", "147258369147258", "159357159357159", "1122334455667788",
        "aaaaaaaaaaaaaaa", "zxcvbnmasdfghjkl",
    ]
}

/// A record of every certificate the CA issued.
public protocol IssuedCertificateStore: Sendable {
    func record(_ certificate: Certificate) throws
    /// Every issued certificate, oldest first.
    func all() throws -> [Certificate]
    func certificate(serial: String) throws -> Certificate?
}

/// The default issued-certificate store: one PEM file per serial number in
/// certificates/issued/.
public struct FolderIssuedCertificateStore: IssuedCertificateStore {
    public let folder: URL

    public init(folder: URL) {
        self.folder = folder
    }

    public func record(_ certificate: Certificate) throws {
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try AtomicFile.write(
            Data(certificate.pem.utf8),
            to: folder.appendingPathComponent("\(certificate.serialNumberHex).pem"),
            permissions: 0o644)
    }

    public func all() throws -> [Certificate] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return try names.filter { $0.hasSuffix(".pem") }.map {
            try Certificate(contentsOf: folder.appendingPathComponent($0))
        }.sorted { $0.notBefore < $1.notBefore }
    }

    public func certificate(serial: String) throws -> Certificate? {
        let name = serial.uppercased()
        guard !name.isEmpty, name.allSatisfy(\.isHexDigit) else { return nil }
        let url = folder.appendingPathComponent("\(name).pem")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try Certificate(contentsOf: url)
    }
}
