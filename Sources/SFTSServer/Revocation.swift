import Foundation
import SFTSCrypto
import SFTSProtocol

/// One revoked certificate as revoked.json records it.
public struct RevocationRecord: Codable, Equatable, Sendable {
    public var name: String
    public var revokedAt: String
    public var reason: RevocationReason

    public init(name: String, revokedAt: String, reason: RevocationReason) {
        self.name = name
        self.revokedAt = revokedAt
        self.reason = reason
    }
}

/// The revocation index: revoked serial numbers and the number of the last CRL issued.
public struct RevocationIndex: Codable, Equatable, Sendable {
    public var crlNumber: Int
    public var revoked: [String: RevocationRecord]

    public static let empty = RevocationIndex(crlNumber: 0, revoked: [:])
}

/// Revoked certificates. Implementations must make each call atomic against other processes,
/// such as `sfts ca revoke` next to a running server.
public protocol RevocationStore: Sendable {
    func index() throws -> RevocationIndex
    /// Records a revocation; returns false when the serial was already revoked.
    func revoke(serial: String, _ record: RevocationRecord) throws -> Bool
    /// Issues the next CRL number.
    func nextCRLNumber() throws -> Int
}

/// The default revocation store: certificates/revoked.json.
public struct JSONRevocationStore: RevocationStore {
    private let file: JSONFile<RevocationIndex>

    public init(url: URL) {
        file = JSONFile(url: url, empty: { .empty })
    }

    public func index() throws -> RevocationIndex {
        try file.read()
    }

    public func revoke(serial: String, _ record: RevocationRecord) throws -> Bool {
        try file.update { index in
            guard index.revoked[serial] == nil else { return false }
            index.revoked[serial] = record
            return true
        }
    }

    public func nextCRLNumber() throws -> Int {
        try file.update { index in
            index.crlNumber += 1
            return index.crlNumber
        }
    }
}

/// Keeps certificates/crl.pem in step with the revocation index.
public enum RevocationListFile {
    /// How long each CRL is valid. The server re-signs it when half of that has passed, so
    /// it never expires while the server runs.
    public static let validity: TimeInterval = 7 * 24 * 3600

    /// Signs a CRL of every revoked certificate and writes it atomically.
    ///
    /// No certificate is ever un-revoked, so a serial that the CRL in place lists but
    /// revoked.json lacks, as after revoked.json was restored from an older backup, is added
    /// back to revoked.json first and stays in the new CRL.
    @discardableResult
    public static func write(root: StateRoot, authority: CertificateAuthority, store: RevocationStore) throws
        -> CertificateRevocationList
    {
        try AtomicFile.withLock(on: root.revocationList) {
            if let existing = try? load(root: root, authority: authority.certificate) {
                let known = try store.index().revoked
                let issued = FolderIssuedCertificateStore(folder: root.issuedFolder)
                for serial in existing.revokedSerials where known[serial] == nil {
                    let name = (try? issued.certificate(serial: serial))??.subjectCommonName ?? "?"
                    _ = try store.revoke(
                        serial: serial,
                        RevocationRecord(
                            name: name, revokedAt: Timestamp.format(Date()), reason: .unspecified))
                }
            }
            let index = try store.index()
            let revoked = index.revoked.map { serial, record in
                RevokedCertificate(
                    serialNumberHex: serial, date: Timestamp.parse(record.revokedAt) ?? Date(), reason: record.reason)
            }
            let list = try authority.issueRevocationList(
                revoked: revoked, number: try store.nextCRLNumber(), validity: validity)
            try AtomicFile.write(Data(list.pem.utf8), to: root.revocationList, permissions: 0o644)
            return list
        }
    }

    /// Loads the CRL and checks that the CA signed it.
    public static func load(root: StateRoot, authority: Certificate) throws -> CertificateRevocationList {
        let text: String
        do {
            text = try String(contentsOf: root.revocationList, encoding: .utf8)
        } catch {
            throw StateError(path: root.revocationList.path, reason: "cannot read: \(error.localizedDescription)")
        }
        let list = try CertificateRevocationList(pem: text)
        guard list.isSigned(by: authority) else {
            throw StateError(path: root.revocationList.path, reason: "is not signed by the CA in ca_certificate.pem")
        }
        return list
    }

    /// True when less than half of the CRL's validity is left.
    public static func isStale(_ list: CertificateRevocationList, at date: Date = Date()) -> Bool {
        list.nextUpdate.timeIntervalSince(date) < validity / 2
    }
}

/// Identifies one version of a file by inode, size and modification time, to notice a
/// replacement without reading it.
struct FileStamp: Equatable {
    let inode: UInt64
    let size: Int64
    let modified: Int64

    init?(_ url: URL) {
        var status = stat()
        guard stat(url.path, &status) == 0 else { return nil }
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        modified = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
    }
}
