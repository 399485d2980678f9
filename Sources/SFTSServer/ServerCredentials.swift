import Foundation
import SFTSCrypto
import SFTSLogging
import SFTSTLS

/// The keys, certificates, CRL and TLS contexts that one connection uses from start to end, so
/// a reload never pairs a handshake made with one server key with a signature by another.
final class ServerCredentials: @unchecked Sendable {
    let pki: ServerPKI
    let revocationList: CertificateRevocationList
    let fileContext: TLSContext
    let enrollmentContext: TLSContext

    init(pki: ServerPKI, revocationList: CertificateRevocationList) throws {
        self.pki = pki
        self.revocationList = revocationList
        fileContext = try TLSContext.server(
            certificate: pki.serverCertificate, key: pki.serverKey, clientCA: pki.authority.certificate,
            revocationList: revocationList)
        enrollmentContext = try TLSContext.server(
            certificate: pki.serverCertificate, key: pki.serverKey, clientCA: nil)
    }
}

/// Hands out the current ``ServerCredentials`` and replaces them when the CRL file changes,
/// when it needs re-signing, or on ``reload(pki:)``; connections already open keep theirs.
final class CredentialsProvider: @unchecked Sendable {
    private let root: StateRoot
    private let revocations: RevocationStore
    private let logger: Logger
    private var current: ServerCredentials
    /// The stamps of crl.pem and revoked.json when the CRL was last loaded.
    private var revocationStamp: [FileStamp?] = []
    private let lock = NSLock()

    init(root: StateRoot, pki: ServerPKI, revocations: RevocationStore, logger: Logger) throws {
        self.root = root
        self.revocations = revocations
        self.logger = logger
        if !FileManager.default.fileExists(atPath: root.revocationList.path) {
            try RevocationListFile.write(root: root, authority: pki.authority, store: revocations)
        }
        revocationStamp = [FileStamp(root.revocationList), FileStamp(root.revocations)]
        let list = try RevocationListFile.load(root: root, authority: pki.authority.certificate)
        current = try ServerCredentials(pki: pki, revocationList: list)
        if RevocationListFile.isStale(list) {
            try RevocationListFile.write(root: root, authority: pki.authority, store: revocations)
        }
    }

    /// The credentials for a new connection. Reads the CRL again first when its file changed,
    /// so a revocation takes effect on the next handshake without a restart.
    func credentials() -> ServerCredentials {
        lock.lock()
        defer { lock.unlock() }
        refreshRevocationList()
        return current
    }

    /// Switches to newly loaded keys and certificates, as after SIGHUP.
    func reload(pki: ServerPKI) throws {
        lock.lock()
        defer { lock.unlock() }
        let list = try RevocationListFile.load(root: root, authority: pki.authority.certificate)
        current = try ServerCredentials(pki: pki, revocationList: list)
        revocationStamp = [FileStamp(root.revocationList), FileStamp(root.revocations)]
    }

    private func refreshRevocationList() {
        do {
            if RevocationListFile.isStale(current.revocationList) {
                try RevocationListFile.write(root: root, authority: current.pki.authority, store: revocations)
                logger.info("crl.renewed", [:])
            }
            // revoked.json counts too: a `ca revoke` killed after writing it but before the
            // CRL leaves the CRL unchanged, and the check below then completes the CRL.
            let stamp = [FileStamp(root.revocationList), FileStamp(root.revocations)]
            guard stamp != revocationStamp else { return }
            var list = try RevocationListFile.load(root: root, authority: current.pki.authority.certificate)
            // An older CRL put back in place would un-revoke certificates; the index decides.
            let missing = Set(try revocations.index().revoked.keys).subtracting(list.revokedSerials)
            if !missing.isEmpty {
                logger.warning(
                    "crl.rewritten",
                    [
                        "reason": "the CRL file lacks revoked serials",
                        "missing": missing.sorted().joined(separator: ","),
                    ])
                list = try RevocationListFile.write(root: root, authority: current.pki.authority, store: revocations)
            }
            current = try ServerCredentials(pki: current.pki, revocationList: list)
            revocationStamp = [FileStamp(root.revocationList), FileStamp(root.revocations)]
            logger.info(
                "crl.loaded",
                ["revoked": String(list.revokedSerials.count), "next.update": LogLine.timestamp(list.nextUpdate)])
        } catch {
            // Keep checking with the CRL already loaded rather than stop serving.
            logger.error("crl.load-failed", ["path": root.revocationList.path, "error": "\(error)"])
        }
    }
}
