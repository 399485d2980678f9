import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS

#if canImport(Glibc)
    import Glibc
#endif

/// One file-service connection: mutual TLS, a SCRAM-style login bound to the channel, then
/// commands, each checked against the user's role.
final class FileSession: Session {

    private var user = ""
    private var clientCertificate: Certificate?
    /// Whether this session proved the password, which opening a new session requires.
    private var loggedInWithPassword = false
    override var requestClient: String {
        user.isEmpty ? super.requestClient : "user " + user
    }

    /// The session ticket this connection logged in with, checked again before each request.
    private var sessionTicket: String?
    init(services: ServerServices, credentials: ServerCredentials, connection: TLSConnection, peer: PeerInfo) {
        super.init(services: services, credentials: credentials, connection: connection, peer: peer, service: "file")
    }

    func run() {
        guard handshake() else { return }
        guard let certificate = connection.peerCertificate,
            let commonName = certificate.subjectCommonName
        else {
            logEvent(.warning, "tls.failed", [("error", "client certificate without one CN")])
            return
        }
        clientCertificate = certificate
        logEvent(
            .info, "tls.established",
            [
                ("tls.version", connection.protocolVersion), ("tls.cipher", connection.cipherSuite),
                ("client.cn", commonName), ("client.serial", certificate.serialNumberHex),
            ])

        var requestID = "-"
        do {
            try login(certificateName: commonName, certificate: certificate, requestID: &requestID)
        } catch let failure as ServiceFailure {
            // Every failed login counts, whatever the client sent instead of a valid proof.
            recordAuthenticationFailure(failure)
            _ = report(failure, requestID: requestID, command: "login")
            logClosed()
            return
        } catch {
            endAfterUnexpected(error, requestID: requestID, command: "login")
            return
        }

        while true {
            let frame: IncomingFrame
            do {
                guard let next = try receiveRequest() else {
                    logClosed()
                    return
                }
                frame = next
            } catch let failure as ServiceFailure {
                if report(failure, requestID: "-", command: "request") {
                    continue
                }
                logClosed()
                return
            } catch {
                logClosed(error)
                return
            }

            do {
                guard try dispatch(frame) else {
                    logClosed()
                    return
                }
            } catch let failure as ServiceFailure {
                if !report(failure, requestID: frame.id, command: frame.typeName) {
                    logClosed()
                    return
                }
            } catch {
                endAfterUnexpected(error, requestID: frame.id, command: frame.typeName)
                return
            }
        }
    }

    // MARK: - Login

    private func login(certificateName: String, certificate: Certificate, requestID: inout String)
        throws
    {
        let (startFrame, start) = try expectRequest(.loginStart, LoginStart.self)
        requestID = startFrame.id
        guard start.user == certificateName else {
            logEvent(
                .warning, "login.failed",
                [("user", start.user), ("client.cn", certificateName), ("reason", "name mismatch")])
            throw ServiceFailure(
                .authenticationFailed,
                "login name '\(start.user)' does not match the certificate's CN "
                    + "'\(certificateName)'", closesConnection: true)
        }
        guard Session.isValidNonce(start.nonce) else {
            throw ServiceFailure(.invalidRequest, "invalid client nonce", closesConnection: true)
        }
        guard let record = try services.users.user(named: start.user),
            let verifier = record.verifier
        else {
            logEvent(.warning, "login.failed", [("user", start.user), ("reason", "unknown user")])
            throw ServiceFailure(
                .authenticationFailed,
                "user '\(start.user)' is not enrolled on this server; enroll again or ask the "
                    + "operator", closesConnection: true)
        }
        let fingerprint = certificate.sha256Fingerprint.hexString
        guard accepts(record, fingerprint: fingerprint) else {
            logEvent(
                .warning, "login.failed",
                [
                    ("user", start.user), ("reason", "superseded certificate"),
                    ("client.serial", certificate.serialNumberHex),
                ])
            throw ServiceFailure(
                .authenticationFailed,
                "this certificate (serial \(certificate.serialNumberHex)) is no longer the "
                    + "current one for '\(start.user)'", closesConnection: true)
        }

        if let ticket = start.session {
            try acceptSession(ticket, user: start.user, record: record, fingerprint: fingerprint, requestID: requestID)
            return
        }

        let channelBinding: [UInt8]
        do {
            channelBinding = try connection.channelBinding()
        } catch {
            throw ServiceFailure(.invalidRequest, String(describing: error), closesConnection: true)
        }
        let serverNonce = Data(SecureRandom.bytes(EnrollmentSession.nonceBytes)).base64EncodedString()
        try channel.send(
            .loginChallenge, id: requestID,
            body: LoginChallenge(
                nonce: serverNonce, salt: Data(verifier.salt).base64EncodedString(),
                iterations: verifier.iterations))

        let (_, proof) = try expectRequest(.loginProof, LoginProof.self)
        let authMessage = SignedRecord.login(
            user: start.user, clientNonce: start.nonce, serverNonce: serverNonce,
            salt: verifier.salt, iterations: verifier.iterations, channelBinding: channelBinding)
        guard let proofBytes = Data(base64Encoded: proof.proof),
            SCRAM.verifyClientProof(
                proof: Array(proofBytes), storedKey: verifier.storedKey, authMessage: authMessage)
        else {
            logEvent(.warning, "login.failed", [("user", start.user), ("reason", "wrong password")])
            throw ServiceFailure(
                .authenticationFailed, "login failed for '\(start.user)': wrong password",
                closesConnection: true)
        }

        user = start.user
        loggedInWithPassword = true
        services.addressGuard.recordSuccess(for: peer.address)
        if record.previousCertificateFingerprint != nil, fingerprint == record.certificateFingerprint {
            // The renewed certificate has arrived, so the one it replaced is done.
            try services.users.modify(user) { $0.previousCertificateFingerprint = nil }
        }
        let permissions = try services.rolePolicy().permissions[record.role] ?? []
        let signature = SCRAM.serverSignature(serverKey: verifier.serverKey, authMessage: authMessage)
        try channel.send(
            .loginAccepted, id: requestID,
            body: LoginAccepted(
                signature: Data(signature).base64EncodedString(), role: record.role,
                permissions: permissions.map(\.rawValue).sorted(), idleTimeout: idleTimeoutSeconds))
        logEvent(.info, "login.succeeded", [("user", user), ("role", record.role)])
    }

    /// Logs in with a session ticket in place of the password proof.
    private func acceptSession(
        _ ticket: String, user name: String, record: UserRecord, fingerprint: String, requestID: String
    ) throws {
        guard ticketIsValid(ticket, user: name, fingerprint: fingerprint, record: record) else {
            logEvent(.info, "login.session-rejected", [("client.serial", clientCertificate?.serialNumberHex ?? "-")])
            throw ServiceFailure(
                .sessionInvalid, "the login session expired or no longer applies; log in with the password",
                closesConnection: true)
        }
        user = name
        sessionTicket = ticket
        let permissions = try services.rolePolicy().permissions[record.role] ?? []
        try channel.send(
            .loginAccepted, id: requestID,
            body: LoginAccepted(
                signature: "", role: record.role, permissions: permissions.map(\.rawValue).sorted(),
                idleTimeout: idleTimeoutSeconds))
        logEvent(.info, "login.succeeded", [("user", user), ("role", record.role), ("method", "session")])
    }

    // MARK: - Commands

    /// Runs one command; returns false when the session must end after it.
    private func dispatch(_ frame: IncomingFrame) throws -> Bool {
        switch frame.type {
        case .list:
            try list(frame, try decode(frame, ListRequest.self))
        case .put:
            try put(frame, try decode(frame, PutRequest.self))
        case .get:
            try get(frame, try decode(frame, PathRequest.self))
        case .remove:
            try remove(frame, try decode(frame, PathRequest.self))
        case .changePassword:
            try changePassword(frame, try decode(frame, ChangePasswordRequest.self))
        case .renew:
            try renew(frame, try decode(frame, RenewRequest.self))
            return false
        case .openSession:
            try openSession(frame, try decode(frame, OpenSessionRequest.self))
        case .ping:
            // Keeps an interactive session open between commands. The frame's timestamp and id
            // were checked like any other request's, and a removed or revoked user is cut off.
            _ = try decode(frame, EmptyBody.self)
            _ = try currentUser(for: "ping")
            try channel.send(.pong, id: frame.id, body: EmptyBody())
        default:
            throw ServiceFailure(
                .invalidRequest, "unknown or misplaced request type \(RemotePath.quoted(frame.typeName))")
        }
        return true
    }

    private func decode<Body: Decodable>(_ frame: IncomingFrame, _ type: Body.Type) throws -> Body {
        do {
            return try frame.body(type)
        } catch {
            throw ServiceFailure(.invalidRequest, String(describing: error))
        }
    }

    /// Checks the user's current role, read afresh so a role change applies to the next
    /// command, and throws `permissionDenied` naming the role and permission.
    private func authorize(_ permission: Permission, for command: String) throws {
        let record = try currentUser(for: command)
        guard try services.rolePolicy().allows(record.role, permission) else {
            logEvent(
                .warning, "access.denied",
                [("user", user), ("role", record.role), ("permission", permission.rawValue), ("command", command)])
            throw ServiceFailure(
                .permissionDenied,
                "permission denied: role '\(record.role)' lacks the '\(permission.rawValue)' "
                    + "permission that \(command) needs; ask an administrator to change your role")
        }
    }

    /// Returns the user's record, read afresh, after checking that the session still stands: a
    /// user removed or enrolled again since the login has a new record, so the session's
    /// certificate must still be the one the record names, and the CRL must not list it.
    ///
    /// A connection may outlive what let it in. So each request also checks that the client
    /// certificate has not expired. After a login with a session ticket, it checks that the
    /// ticket has not expired and was issued after the last password change.
    private func currentUser(for command: String) throws -> UserRecord {
        guard let record = try services.users.user(named: user),
            let fingerprint = clientCertificate?.sha256Fingerprint.hexString, accepts(record, fingerprint: fingerprint),
            !isRevoked
        else {
            logEvent(.warning, "session.revoked", [("user", user), ("command", command)])
            throw ServiceFailure(
                .authenticationFailed,
                "user '\(user)' was removed, enrolled again or revoked since this session logged in",
                closesConnection: true)
        }
        if let notAfter = clientCertificate?.notAfter, notAfter < Date() {
            logEvent(.warning, "session.certificate-expired", [("user", user), ("command", command)])
            throw ServiceFailure(
                .authenticationFailed,
                "the client certificate expired at \(Timestamp.format(notAfter)); an expired certificate "
                    + "cannot renew, so enroll again with a token from the operator",
                closesConnection: true)
        }
        if let ticket = sessionTicket, !ticketIsValid(ticket, user: user, fingerprint: fingerprint, record: record) {
            logEvent(.info, "session.ticket-ended", [("user", user), ("command", command)])
            throw ServiceFailure(
                .sessionInvalid, "the login session expired or the password changed; log in with the password",
                closesConnection: true)
        }
        return record
    }

    /// True when the record accepts the certificate with `fingerprint`. The certificate a
    /// renewal replaced is accepted only while the renewed one is not revoked, so revoking
    /// the current certificate, by name or by serial, also shuts out the one before it.
    private func accepts(_ record: UserRecord, fingerprint: String) -> Bool {
        guard record.accepts(fingerprint: fingerprint) else { return false }
        if fingerprint == record.certificateFingerprint { return true }
        let revoked = services.credentials.credentials().revocationList.revokedSerials
        return !revoked.contains(record.certificateSerial)
    }

    /// Checks a session ticket. An unreadable ticket key is logged as a state error and makes
    /// every ticket invalid, so clients fall back to the password instead of failing.
    private func ticketIsValid(_ ticket: String, user: String, fingerprint: String, record: UserRecord) -> Bool {
        do {
            return try SessionTicketIssuer(root: services.configuration.root).isValid(
                ticket, user: user, fingerprint: fingerprint, passwordChangedAt: record.passwordChangedAt)
        } catch {
            logEvent(.error, "state.unreadable", [("error", "\(error)")])
            return false
        }
    }

    /// True when the current CRL lists this session's certificate, revoked after the login.
    private var isRevoked: Bool {
        guard let serial = clientCertificate?.serialNumberHex else { return false }
        return services.credentials.credentials().revocationList.revokedSerials.contains(serial)
    }

    /// Reads upload records, which only add the uploader and digest to a listing or a
    /// download: an unreadable files.json is logged and the command goes on without them.
    private func fileRecords<T>(_ read: () throws -> T) -> T? {
        do {
            return try read()
        } catch {
            logEvent(.error, "state.unreadable", [("error", "\(error)")])
            return nil
        }
    }

    private func path(_ text: String, allowRoot: Bool = false) throws -> RemotePath {
        do {
            return try RemotePath(text, allowRoot: allowRoot)
        } catch let error as InvalidNameError {
            throw ServiceFailure(.invalidRequest, error.description)
        }
    }

    private func list(_ frame: IncomingFrame, _ request: ListRequest) throws {
        try authorize(.ls, for: "ls")
        let folder = try path(request.path, allowRoot: true)
        // TODO: the folder's entries, and for -l all of files.json, stay in memory until the
        // last page is sent, so many parallel listings of a folder with 100 000s of files
        // take hundreds of MiB. Read the folder and the records page by page instead.
        let entries = try storeCall { try services.files.list(folder) }
        let records = request.long ? fileRecords { try services.fileRecords.records() } ?? [:] : [:]

        // Each page's entries are built as the page is sent, so only one page of them exists.
        let pageSize = 200
        var start = 0
        repeat {
            let end = min(start + pageSize, entries.count)
            let page = entries[start..<end].map { entry -> ListEntry in
                let fullPath = (folder.components + [entry.name]).joined(separator: "/")
                let record = records[fullPath].flatMap { $0.size == entry.size ? $0 : nil }
                return ListEntry(
                    name: entry.name, kind: entry.isFolder ? ListEntry.folderKind : ListEntry.fileKind,
                    size: entry.size, modified: Timestamp.format(entry.modified),
                    uploader: record?.uploader, sha256: record?.sha256)
            }
            try channel.send(.listResult, id: frame.id, body: ListResult(entries: page, more: end < entries.count))
            start = end
        } while start < entries.count
        logEvent(
            .info, "ls",
            [("user", user), ("path", folder.description), ("entries", String(entries.count))])
    }

    private func put(_ frame: IncomingFrame, _ request: PutRequest) throws {
        try authorize(.upload, for: "put")
        if request.force {
            try authorize(.delete, for: "put --force")
        }
        let target = try path(request.name)
        guard request.size <= limits.maxFileBytes else {
            throw ServiceFailure(
                .tooLarge,
                "the file has \(request.size) bytes; this server accepts at most "
                    + "\(limits.maxFileBytes)")
        }
        if try storeCall({ try services.files.isFolder(target) }) {
            throw ServiceFailure(
                .invalidRequest,
                "\(RemotePath.quoted(target.description)) is a folder; name the file inside it, such as "
                    + "\(target.description)/NAME, or end the remote name with / to keep the local name")
        }
        if !request.force, try storeCall({ try services.files.exists(target) }) {
            throw ServiceFailure(.alreadyExists, FileStoreError.alreadyExists(target.description).description)
        }
        let upload = try storeCall { try services.files.beginUpload(target) }
        try channel.send(.putReady, id: frame.id, body: EmptyBody())

        let hasher = SHA256Hasher()
        var remaining = request.size
        // This thread receives and decrypts; one pipeline thread hashes and another writes,
        // so AES-GCM, SHA-256 and the disk work at once.
        let pipeline = BodyPipeline(
            chunkBytes: BodyPipeline.chunkBytes(forBodyOf: request.size),
            stages: [{ hasher.update($0) }, { try upload.write($0) }])
        startBody()
        defer { finishBody() }
        while remaining > 0 {
            let buffer = pipeline.nextBuffer()
            let count = Int(min(UInt64(buffer.count), remaining))
            // Fill the whole buffer from several TLS records, so hashing and writing work on
            // large chunks rather than one 16 KiB record at a time.
            // Pieces of 64 KiB keep the watchdog's progress count fine-grained.
            var filled = 0
            while filled < count {
                let piece = min(Session.minimumBodyProgress, count - filled)
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + piece)])
                do {
                    try channel.readExactly(into: slice)
                } catch ProtocolError.truncated(_, let partial) {
                    throw ProtocolError.truncated(
                        expected: Int(request.size), received: Int(request.size - remaining) + filled + partial)
                }
                filled += piece
                bodyAdvanced(by: piece)
            }
            // A failed write is reported after the body, which is still read to keep the
            // connection in step.
            pipeline.submit(buffer, count: count)
            remaining -= UInt64(count)
        }
        finishBody()
        // The pipeline's thread hashes too, so it must be done before the digest is read.
        let storeError: Error?
        do {
            try pipeline.finish()
            storeError = nil
        } catch {
            storeError = error
        }
        let digest = hasher.finish().hexString

        let (recordFrame, record) = try expectRequest(.putRecord, TransferRecord.self)
        if let storeError {
            throw ServiceFailure(.internalError, "storing the file failed: \(storeError)")
        }
        guard record.sha256 == digest else {
            logEvent(
                .warning, "put.integrity-failed",
                [("user", user), ("path", target.description), ("sha256", digest), ("claimed", record.sha256)])
            throw ServiceFailure(
                .integrityFailure,
                "SHA-256 mismatch: received data hashes to \(digest), the signed record says "
                    + "\(record.sha256); nothing was stored")
        }
        let signedBytes = SignedRecord.upload(
            name: target.description, size: request.size, sha256: digest, requestID: frame.id,
            timestamp: frame.timestamp)
        guard let signature = Data(base64Encoded: record.signature),
            let publicKey = clientCertificate?.publicKey,
            publicKey.verifyPSS(signature: Array(signature), message: signedBytes)
        else {
            logEvent(
                .warning, "put.signature-failed",
                [("user", user), ("path", target.description), ("request.id", recordFrame.id)])
            throw ServiceFailure(
                .integrityFailure,
                "the upload record's RSA-PSS signature does not verify with your certificate; "
                    + "nothing was stored")
        }

        try storeCall { try services.files.commit(upload, replace: request.force) }
        let now = Timestamp.format(Date())
        do {
            try services.fileRecords.set(
                FileRecord(
                    uploader: user, sha256: digest, size: request.size, uploadedAt: now,
                    signature: record.signature, requestID: frame.id,
                    requestTimestamp: frame.timestamp), for: target.description)
        } catch {
            logEvent(.error, "put.record-failed", [("path", target.description), ("error", "\(error)")])
        }
        try channel.send(
            .putCompleted, id: frame.id,
            body: PutCompleted(name: target.description, size: request.size, sha256: digest))
        logEvent(
            .info, "put",
            [
                ("user", user), ("path", target.description), ("bytes", String(request.size)),
                ("sha256", digest), ("replace", String(request.force)),
            ])
    }

    private func get(_ frame: IncomingFrame, _ request: PathRequest) throws {
        try authorize(.download, for: "get")
        let source = try path(request.name)
        let (descriptor, size) = try storeCall { try services.files.openForReading(source) }
        defer { close(descriptor) }
        // A record whose size no longer matches describes an earlier file, as in ls -l.
        let fileRecord = fileRecords { try services.fileRecords.record(for: source.description) }?.flatMap {
            $0.size == size ? $0 : nil
        }
        let uploader = fileRecord?.uploader
        try channel.send(.getReady, id: frame.id, body: GetReady(size: size, uploader: uploader))

        // A file that arrived through put has the SHA-256 the server verified then; the record
        // signs that digest, and the client, which hashes what it receives, rejects a file
        // that changed on disk since. Other files are hashed as they are sent.
        let recordedDigest = fileRecord.flatMap { $0.size == size ? $0.sha256 : nil }
        let hasher = recordedDigest == nil ? SHA256Hasher() : nil

        // This thread reads the file, which may wait on the disk, while a second one hashes,
        // encrypts and sends the previous chunk.
        let pipeline = BodyPipeline(chunkBytes: BodyPipeline.chunkBytes(forBodyOf: size)) { [channel] in
            hasher?.update($0)
            try channel.writeRaw($0)
        }
        var remaining = size
        startBody()
        defer { finishBody() }
        var offset = 0
        while remaining > 0, pipeline.error == nil {
            let buffer = pipeline.nextBuffer()
            let count = Int(min(UInt64(buffer.count), remaining))
            // Ask the kernel to read the next 8 MiB in the background while this chunk is
            // hashed, so a file that is not cached costs no waiting on the disk.
            _ = posix_fadvise(descriptor, offset + count, 8 << 20, POSIX_FADV_WILLNEED)
            offset += count
            var filled = 0
            while filled < count {
                let read = Glibc.read(descriptor, buffer.baseAddress! + filled, count - filled)
                if read < 0 && errno == EINTR { continue }
                guard read > 0 else {
                    // The file shrank or failed while being sent: the byte count already promised
                    // can no longer be kept, so the only safe move is to cut the connection.
                    connection.abort()
                    try? pipeline.finish()
                    throw FileStoreError.system(
                        call: "read", path: source.description, errno: read < 0 ? errno : EIO)
                }
                filled += read
            }
            pipeline.submit(buffer, count: count)
            remaining -= UInt64(count)
            bodyAdvanced(by: count)
        }
        try pipeline.finish()
        finishBody()
        let digest = recordedDigest ?? hasher?.finish().hexString ?? ""
        let now = Date()
        let signed = SignedRecord.download(
            name: source.description, size: size, sha256: digest, uploader: uploader ?? "", requestID: frame.id,
            timestamp: Timestamp.format(now))
        let signature = try credentials.pki.serverKey.signPSS(signed)
        let serverCertificate = credentials.pki.serverCertificate
        try channel.send(
            .getRecord, id: frame.id,
            body: TransferRecord(
                sha256: digest, signature: Data(signature).base64EncodedString(),
                signer: "CN=\(serverCertificate.subjectCommonName ?? "?") serial "
                    + serverCertificate.serialNumberHex),
            date: now)
        logEvent(
            .info, "get",
            [("user", user), ("path", source.description), ("bytes", String(size)), ("sha256", digest)])
    }

    private func remove(_ frame: IncomingFrame, _ request: PathRequest) throws {
        try authorize(.delete, for: "rm")
        let target = try path(request.name)
        try storeCall { try services.files.remove(target) }
        do {
            try services.fileRecords.remove(target.description)
        } catch {
            logEvent(.error, "rm.record-failed", [("path", target.description), ("error", "\(error)")])
        }
        try channel.send(.removeCompleted, id: frame.id, body: EmptyBody())
        logEvent(.info, "rm", [("user", user), ("path", target.description)])
    }

    /// Rejects a request that could outlast or widen a session ticket, such as a new password,
    /// a new certificate or a new ticket, on a connection that logged in with a ticket: whoever
    /// copied the ticket must not be able to keep the account.
    private func requirePasswordLogin(for command: String) throws {
        guard loggedInWithPassword else {
            logEvent(.warning, "access.denied", [("user", user), ("command", command), ("reason", "ticket login")])
            throw ServiceFailure(
                .permissionDenied, "\(command) needs a login with the password, not with a session ticket")
        }
    }

    /// Issues a session ticket for this user and certificate. Only a login with the password
    /// may, so a ticket cannot extend itself.
    private func openSession(_ frame: IncomingFrame, _ request: OpenSessionRequest) throws {
        try requirePasswordLogin(for: "login")
        guard let record = try services.users.user(named: user),
            let fingerprint = clientCertificate?.sha256Fingerprint.hexString
        else {
            throw ServiceFailure(.authenticationFailed, "user '\(user)' was removed", closesConnection: true)
        }
        let lifetime = TimeInterval(min(max(request.ttl, 60), Int(SessionTicketIssuer.maximumLifetime)))
        let (ticket, expires) = try SessionTicketIssuer(root: services.configuration.root).issue(
            user: user, fingerprint: fingerprint, passwordChangedAt: record.passwordChangedAt, lifetime: lifetime)
        try channel.send(
            .sessionOpened, id: frame.id, body: SessionOpened(ticket: ticket, expires: Timestamp.format(expires)))
        logEvent(.info, "session.opened", [("user", user), ("expires", Timestamp.format(expires))])
    }

    /// Issues a new certificate for a new key of the logged-in user, under the CA policy. An
    /// expired certificate never gets here: the TLS handshake rejects it.
    private func renew(_ frame: IncomingFrame, _ request: RenewRequest) throws {
        try authorize(.update, for: "renew")
        try requirePasswordLogin(for: "renew")
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pem: request.csr)
        } catch {
            throw ServiceFailure(.invalidRequest, "invalid CSR: \(error)")
        }
        guard csr.publicKey?.der != clientCertificate?.publicKey?.der else {
            throw ServiceFailure(.policyRejected, "a renewal needs a new key; the CSR reuses the current one")
        }
        let certificate: Certificate
        do {
            certificate = try credentials.pki.authority.signClientCertificate(
                csr, expectedName: user, validity: services.configuration.clientCertificateLifetime)
        } catch let error as CryptoError {
            logEvent(.warning, "renew.rejected", [("user", user), ("error", error.description)])
            throw ServiceFailure(.policyRejected, error.description)
        }
        try services.issuedCertificates.record(certificate)
        try services.users.modify(user) { $0.renewCertificate(certificate) }
        try channel.send(.renewed, id: frame.id, body: RenewResult(certificate: certificate.pem))
        logEvent(
            .info, "renew",
            [
                ("user", user), ("previous.serial", clientCertificate?.serialNumberHex ?? "-"),
                ("certificate.serial", certificate.serialNumberHex),
                ("not.after", Timestamp.format(certificate.notAfter)),
            ])
    }

    private func changePassword(_ frame: IncomingFrame, _ request: ChangePasswordRequest) throws {
        try authorize(.update, for: "passwd")
        try requirePasswordLogin(for: "passwd")
        do {
            try services.passwordPolicy().check(request.password, user: user)
        } catch let error as PasswordPolicyError {
            throw ServiceFailure(.policyRejected, error.description)
        }
        let verifier = try PasswordVerifier.derive(
            password: PasswordPolicy.normalize(request.password),
            iterations: services.configuration.verifierIterations)
        try services.users.modify(user) { $0.setVerifier(verifier, at: Timestamp.format(Date())) }
        try channel.send(.passwordChanged, id: frame.id, body: EmptyBody())
        logEvent(.info, "passwd", [("user", user)])
    }

    /// Runs a file store call, turning its errors into failures reported to the client.
    private func storeCall<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as FileStoreError {
            switch error {
            case .notFound: throw ServiceFailure(.notFound, error.description)
            case .alreadyExists: throw ServiceFailure(.alreadyExists, error.description)
            case .system: throw ServiceFailure(.internalError, error.description)
            default: throw ServiceFailure(.invalidRequest, error.description)
            }
        }
    }
}
