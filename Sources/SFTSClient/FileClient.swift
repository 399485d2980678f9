import Foundation
import SFTSCrypto
import SFTSLogging
import SFTSProtocol
import SFTSTLS

#if canImport(Glibc)
    import Glibc
#endif

/// The outcome of an upload.
public struct PutOutcome: Sendable {
    public let remoteName: String
    public let size: UInt64
    public let sha256: String
}

/// The outcome of a download.
public struct GetOutcome: Sendable {
    public let localPath: String
    public let size: UInt64
    public let sha256: String
    /// The certificate that signed the download record, as the server names it.
    public let signer: String
    public let uploader: String?
}

/// A logged-in connection to the file service.
public final class FileClient {
    private let transport: ClientTransport
    private let logger: Logger
    private let profile: Profile
    private let clientKey: PrivateKey
    /// The normalised password, kept in memory to encrypt a renewed key; nil after a login
    /// with a session ticket.
    private var password: String?
    private let clock: PhaseClock
    private let certificate: Certificate
    private let caCertificate: Certificate
    public let user: String
    public let role: String
    public let permissions: [String]
    /// Seconds the server lets the connection stay silent, when it says.
    public let serverIdleTimeout: Int?

    /// The most entries one listing may have.
    public static let maxListEntries = 1_000_000

    /// How a client logs in.
    public enum Credentials {
        /// The password, read only when it is needed.
        case password(() throws -> String)
        /// The profile's login session when one is open, else the password.
        case sessionOrPassword(() throws -> String)
    }

    /// Connects with the profile's certificate and logs in.
    public static func connect(
        profile: Profile, credentials: Credentials, logger: Logger, timeouts: ClientTimeouts = ClientTimeouts()
    ) throws -> FileClient {
        let settings = profile.settings
        let clock = PhaseClock()
        do {
            if profile.hasSessionFiles && profile.activeSession() == nil {
                // An expired session leaves an unencrypted key behind; it goes at the next command.
                profile.clearSession()
            }
            if case .sessionOrPassword(let password) = credentials, let session = profile.activeSession() {
                clock.mark("key")
                do {
                    return try connect(
                        profile: profile, key: session.key, password: nil, ticket: session.ticket, clock: clock,
                        logger: logger, timeouts: timeouts)
                } catch let error as ClientError where error.isSessionRejection {
                    // The session ended on the server's side, as after a restart with a new key
                    // or a password change; fall back to the password.
                    profile.clearSession()
                    logger.info("session.ended", ["user": settings.user, "profile": profile.name])
                    return try connect(
                        profile: profile, credentials: .password(password), logger: logger, timeouts: timeouts)
                }
            }
            let normalized: String
            switch credentials {
            case .password(let read), .sessionOrPassword(let read):
                do {
                    normalized = PasswordPolicy.normalize(try read())
                } catch {
                    throw UnreadablePassword(underlying: error)
                }
            }
            let key = try profile.clientKey(password: normalized)
            clock.mark("key")
            return try connect(
                profile: profile, key: key, password: normalized, ticket: nil, clock: clock, logger: logger,
                timeouts: timeouts)
        } catch let error as UnreadablePassword {
            // The caller's own error, such as a missing password option, reaches it unchanged.
            throw error.underlying
        } catch {
            let wrapped = ClientError.wrap(error)
            logger.warning(
                "connect.failed",
                ["server": settings.server, "user": settings.user, "error": wrapped.message])
            throw wrapped
        }
    }

    /// An error from the password callback, passed through without wrapping.
    private struct UnreadablePassword: Error {
        let underlying: Error
    }

    private static func connect(
        profile: Profile, key: PrivateKey, password: String?, ticket: String?, clock: PhaseClock, logger: Logger,
        timeouts: ClientTimeouts
    ) throws -> FileClient {
        let settings = profile.settings
        let certificate = try profile.clientCertificate()
        let ca = try profile.caCertificate()
        if certificate.notAfter <= Date() {
            throw ClientError(
                .authentication,
                "the client certificate of profile '\(profile.name)' expired at "
                    + "\(Timestamp.format(certificate.notAfter)) and cannot be renewed; enroll again with --force, "
                    + "with the host code and your current password or with a token from the operator")
        }
        let context = try TLSContext.client(trusting: ca, certificate: certificate, key: key)
        let transport = try ClientTransport(
            host: settings.server, port: settings.port, context: context, timeouts: timeouts, clock: clock)
        let client = try FileClient(
            transport: transport, profile: profile, key: key, password: password, ticket: ticket,
            certificate: certificate, caCertificate: ca, logger: logger, clock: clock)
        clock.mark("login")
        logger.info(
            "login.succeeded",
            [
                "server": settings.server, "user": settings.user, "role": client.role,
                "method": ticket == nil ? "password" : "session",
            ])
        return client
    }

    private init(
        transport: ClientTransport, profile: Profile, key: PrivateKey, password: String?, ticket: String?,
        certificate: Certificate, caCertificate: Certificate, logger: Logger, clock: PhaseClock
    ) throws {
        self.transport = transport
        self.profile = profile
        self.logger = logger
        self.password = password
        self.certificate = certificate
        self.caCertificate = caCertificate
        self.clock = clock
        clientKey = key
        user = profile.settings.user

        let clientNonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        if let ticket {
            try transport.send(.loginStart, LoginStart(user: user, nonce: clientNonce, session: ticket))
            let accepted = try transport.receive(.loginAccepted, LoginAccepted.self)
            role = accepted.role
            permissions = accepted.permissions
            serverIdleTimeout = accepted.idleTimeout
            return
        }
        guard let password else {
            throw ClientError(.invalidInput, "no password to log in with")
        }

        let channelBinding = try transport.connection.channelBinding()
        try transport.send(.loginStart, LoginStart(user: user, nonce: clientNonce))
        let challenge = try transport.receive(.loginChallenge, LoginChallenge.self)
        guard let salt = Data(base64Encoded: challenge.salt),
            (10_000...10_000_000).contains(challenge.iterations)
        else {
            throw ClientError(
                .network,
                "the server sent invalid verifier parameters (\(challenge.iterations) "
                    + "iterations)")
        }
        let authMessage = SignedRecord.login(
            user: user, clientNonce: clientNonce, serverNonce: challenge.nonce, salt: Array(salt),
            iterations: challenge.iterations, channelBinding: channelBinding)
        let keys = try SCRAM.keys(password: password, salt: Array(salt), iterations: challenge.iterations)
        let proof = SCRAM.clientProof(clientKey: keys.clientKey, authMessage: authMessage)
        try transport.send(.loginProof, LoginProof(proof: Data(proof).base64EncodedString()), continuesExchange: true)
        let accepted = try transport.receive(.loginAccepted, LoginAccepted.self)

        let expected = SCRAM.serverSignature(serverKey: keys.serverKey, authMessage: authMessage)
        guard let signature = Data(base64Encoded: accepted.signature),
            Digest.constantTimeEqual(Array(signature), expected)
        else {
            throw ClientError(
                .authentication,
                "the server could not prove that it holds your password verifier")
        }
        role = accepted.role
        permissions = accepted.permissions
        serverIdleTimeout = accepted.idleTimeout
    }

    /// Time spent in each phase of connecting and of the command, for `SFTS_TIMING`.
    public var phases: [(name: String, seconds: TimeInterval)] {
        clock.phases
    }

    /// Records the end of the command's request phase.
    public func markRequestDone() {
        clock.mark("request")
    }

    /// Opens a login session for `lifetime` seconds and stores its ticket, with the client key
    /// unencrypted, in the profile (mode 0600), so later commands need neither the password
    /// nor its key derivations until the session ends.
    public func openSession(lifetime: TimeInterval) throws -> Date {
        guard password != nil else {
            throw ClientError(.invalidInput, "opening a session needs a login with the password")
        }
        return try perform("login", [:]) {
            try transport.send(.openSession, OpenSessionRequest(ttl: Int(lifetime)))
            let opened = try transport.receive(.sessionOpened, SessionOpened.self)
            guard let expires = Timestamp.parse(opened.expires) else {
                throw ClientError(.network, "the server sent an invalid session expiry")
            }
            try profile.saveSession(ticket: opened.ticket, expires: expires, key: clientKey)
            return expires
        }
    }

    /// Ends the session with a TLS close_notify.
    public func close() {
        transport.close()
    }

    /// How long an interactive client may wait for input before it sends ``ping()``: a third
    /// of the server's idle timeout, from 0.2 to 20 seconds. Nil when the server did not
    /// announce its timeout, as servers without `ping` do not.
    public var keepaliveInterval: TimeInterval? {
        serverIdleTimeout.map { min(20, max(0.2, TimeInterval($0) / 3)) }
    }

    /// Sends a `ping` and waits for the `pong`, which keeps an idle session open.
    public func ping() throws {
        do {
            try transport.send(.ping, EmptyBody())
            _ = try transport.receive(.pong, EmptyBody.self)
        } catch {
            throw endedSession(ClientError.wrap(error))
        }
    }

    /// Deletes the profile's login session when the server ended it during this connection,
    /// as after an expiry or a password change, and returns `error`.
    private func endedSession(_ error: ClientError) -> ClientError {
        if error.isSessionRejection {
            profile.clearSession()
            logger.info("session.ended", ["user": user, "profile": profile.name])
        }
        return error
    }

    // MARK: - Commands

    /// The largest size a server may report: what a signed 64-bit file offset can hold.
    static let maxFileBytes = UInt64(Int64.max)

    /// Lists a remote folder; an empty path lists the top.
    public func list(_ path: String, long: Bool) throws -> [ListEntry] {
        let path = try ClientError.remotePath(path, allowRoot: true, allowTrailingSlash: true).description
        return try perform("ls", ["path": path]) {
            try transport.send(.list, ListRequest(path: path, long: long))
            var entries: [ListEntry] = []
            while true {
                let page = try transport.receive(.listResult, ListResult.self)
                if let bad = page.entries.first(where: { $0.size > FileClient.maxFileBytes }) {
                    throw ClientError(
                        .network,
                        "the server listed \(RemotePath.quoted(bad.name)) with an impossible size of \(bad.size) bytes")
                }
                entries.append(contentsOf: page.entries)
                if !page.more { return entries }
                // A server that never ends its listing must not exhaust the client's memory.
                guard entries.count <= FileClient.maxListEntries else {
                    throw ClientError(
                        .network, "the server sent more than \(FileClient.maxListEntries) entries for one listing")
                }
            }
        }
    }

    /// Removes a remote file or empty folder.
    public func remove(_ remote: String) throws {
        let name = try ClientError.remotePath(remote, allowTrailingSlash: true).description
        try perform("rm", ["path": name]) {
            try transport.send(.remove, PathRequest(name: name))
            _ = try transport.receive(.removeCompleted, EmptyBody.self)
        }
    }

    /// True when less than a third of the client certificate's lifetime is left, the point at
    /// which commands renew it on their own.
    public var certificateNeedsRenewal: Bool {
        guard password != nil else { return false }
        let lifetime = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        return certificate.notAfter.timeIntervalSinceNow < lifetime / 3
    }

    /// When the current client certificate expires.
    public var certificateExpiry: Date { certificate.notAfter }

    /// Renews the client certificate: a new key of the same size, a CSR, and the certificate
    /// the server issues for it, stored with the key in the profile.
    ///
    /// The server ends the session after a renewal, so this is the last call on a client.
    @discardableResult
    public func renew() throws -> Certificate {
        guard let password else {
            throw ClientError(
                .invalidInput, "renewing needs your password, which a login session does not have; run sfts renew")
        }
        return try perform("renew", [:]) {
            let newKey = try PrivateKey.generateRSA(bits: max(clientKey.bits, PrivateKey.minimumRSABits))
            let csr = try CertificateSigningRequest.create(commonName: user, key: newKey)
            try transport.send(.renew, RenewRequest(csr: csr.pem))
            let result = try transport.receive(.renewed, RenewResult.self)
            let renewed: Certificate
            do {
                renewed = try Certificate(pem: result.certificate)
                try renewed.verify(trusting: [caCertificate], purpose: .tlsClient)
            } catch {
                throw ClientError(.integrity, "the renewed certificate does not verify: \(error)")
            }
            guard renewed.matches(newKey), renewed.subjectCommonName == user else {
                throw ClientError(.integrity, "the renewed certificate is not for the new key and this user")
            }
            _ = try Profile.write(
                name: profile.name, home: profile.home, settings: profile.settings, caCertificate: caCertificate,
                certificate: renewed, encryptedKeyPEM: try newKey.pem(passphrase: password))
            return renewed
        }
    }

    /// Changes the password on the server and re-encrypts the local key with it.
    ///
    /// The re-encrypted key is written to a staging file before the request. It is renamed over
    /// the key only after the server accepted the change, so a refusal leaves the old key.
    public func changePassword(to newPassword: String) throws {
        let normalized = PasswordPolicy.normalize(newPassword)
        do {
            try PasswordPolicy().check(normalized, user: user)
        } catch {
            throw ClientError.wrap(error)
        }
        guard clientKeyOpens(with: normalized) == false else {
            throw ClientError(.rejected, "the new password is the same as the current one; choose another")
        }
        let staged = try profile.stageKey(encryptedKeyPEM: try clientKey.pem(passphrase: normalized))
        do {
            try perform("passwd", [:]) {
                try transport.send(.changePassword, ChangePasswordRequest(password: normalized))
                _ = try transport.receive(.passwordChanged, EmptyBody.self)
            }
        } catch let error as ClientError where error.kind == .network {
            // The connection broke, so the server may or may not have applied the change.
            throw ClientError(
                .network,
                "\(error.message); the server may have changed the password. If 'sfts ls' with the old "
                    + "password now fails, move \(staged.path) over \(profile.keyURL.path) and use the new one")
        } catch {
            profile.discardStagedKey(staged)
            throw error
        }
        try profile.commitStagedKey(staged)
        // A renewal later in this session encrypts the new key with the new password.
        password = normalized
        // A session ticket names the time the password changed, so the server ends it anyway.
        profile.clearSession()
    }

    /// Uploads a local regular file.
    ///
    /// The body is hashed as it is sent; the signed record follows it, so the file is read
    /// once. The server stores nothing unless hash and signature check out. `progress`, when
    /// given, is called on this thread with the bytes sent so far and the total after each chunk.
    /// `identity`, from a recursive plan, makes sure the file sent is the file planned.
    public func put(
        localPath: String, remote: String?, force: Bool, identity: FileIdentity? = nil,
        progress: ((UInt64, UInt64) -> Void)? = nil
    ) throws -> PutOutcome {
        let source = try LocalFile.openForReading(localPath, identity: identity)
        defer { Glibc.close(source.descriptor) }
        InterruptCleanup.register()
        defer { InterruptCleanup.clear() }
        // A remote name ending in / names a folder, and the file keeps its local name in it.
        var remoteText = remote ?? LocalFile.lastComponent(of: localPath)
        if remoteText.hasSuffix("/") {
            remoteText += LocalFile.lastComponent(of: localPath)
        }
        let remoteName = try ClientError.remotePath(remoteText).description

        return try perform("put", ["path": remoteName, "bytes": String(source.size)]) {
            let request = try transport.send(
                .put, PutRequest(name: remoteName, size: source.size, force: force))
            _ = try transport.receive(.putReady, EmptyBody.self)

            // This thread reads and hashes the file while a second one encrypts and sends the
            // previous chunk, so SHA-256 and AES-GCM run on two cores.
            let hasher = SHA256Hasher()
            let pipeline = BodyPipeline(chunkBytes: BodyPipeline.chunkBytes(forBodyOf: source.size)) {
                try self.writeBody($0)
            }
            var remaining = source.size
            while remaining > 0, pipeline.error == nil {
                let buffer = pipeline.nextBuffer()
                let count = Int(min(UInt64(buffer.count), remaining))
                var filled = 0
                while filled < count {
                    let read = Glibc.read(source.descriptor, buffer.baseAddress! + filled, count - filled)
                    if read < 0 && errno == EINTR { continue }
                    guard read > 0 else {
                        transport.connection.abort()
                        try? pipeline.finish()
                        throw ClientError(
                            .local,
                            "\(localPath) changed size while it was being sent; nothing was stored")
                    }
                    filled += read
                }
                hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                pipeline.submit(buffer, count: count)
                remaining -= UInt64(count)
                progress?(source.size - remaining, source.size)
            }
            try pipeline.finish()
            let digest = hasher.finish().hexString
            let signed = SignedRecord.upload(
                name: remoteName, size: source.size, sha256: digest, requestID: request.id,
                timestamp: request.timestamp)
            let signature = try clientKey.signPSS(signed)
            try transport.send(
                .putRecord,
                TransferRecord(sha256: digest, signature: Data(signature).base64EncodedString(), signer: user),
                continuesExchange: true)
            let completed = try transport.receive(.putCompleted, PutCompleted.self)
            guard completed.sha256 == digest, completed.size == source.size else {
                throw ClientError(
                    .integrity,
                    "the server stored \(completed.size) bytes with SHA-256 "
                        + "\(DisplayText.escaped(completed.sha256)), but \(source.size) bytes with "
                        + "\(digest) were sent")
            }
            guard
                completed.name.precomposedStringWithCanonicalMapping
                    == remoteName.precomposedStringWithCanonicalMapping
            else {
                throw ClientError(
                    .integrity,
                    "the server stored the upload as \(RemotePath.quoted(completed.name)), "
                        + "not as \(RemotePath.quoted(remoteName))")
            }
            return PutOutcome(remoteName: completed.name, size: completed.size, sha256: digest)
        }
    }

    /// Downloads a remote file to `localPath` (default: its last component in the current
    /// folder).
    ///
    /// The body goes to a temporary file beside the target, which takes the target's name
    /// only after the SHA-256 and the server's RSA-PSS signature over the record check out.
    /// `progress` is called like `put`'s, with the bytes received so far.
    /// `folderIdentity`, from a recursive plan, makes sure the file lands in the planned folder.
    public func get(
        remote: String, localPath: String?, force: Bool, folderIdentity: FileIdentity? = nil,
        progress: ((UInt64, UInt64) -> Void)? = nil
    ) throws -> GetOutcome {
        let remoteName = try ClientError.remotePath(remote).description
        let target = try FileClient.downloadTarget(remote: remote, localPath: localPath, force: force)
        guard let serverKey = transport.connection.peerCertificate?.publicKey else {
            throw ClientError(.network, "the server certificate has no usable public key")
        }

        return try perform("get", ["path": remoteName]) {
            let request = try transport.send(.get, PathRequest(name: remoteName))
            let ready = try transport.receive(.getReady, GetReady.self)
            guard ready.size <= FileClient.maxFileBytes else {
                throw ClientError(.network, "the server announced an impossible size of \(ready.size) bytes")
            }
            let output = try LocalFile.Download(target: target, folderIdentity: folderIdentity)

            // This thread receives and decrypts; one pipeline thread hashes and another writes.
            let hasher = SHA256Hasher()
            let pipeline = BodyPipeline(
                chunkBytes: BodyPipeline.chunkBytes(forBodyOf: ready.size),
                stages: [{ hasher.update($0) }, { try output.write($0) }])
            var remaining = ready.size
            while remaining > 0 {
                let buffer = pipeline.nextBuffer()
                let count = Int(min(UInt64(buffer.count), remaining))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                do {
                    try transport.channel.readExactly(into: slice)
                } catch ProtocolError.truncated(_, let partial) {
                    try? pipeline.finish()
                    throw ClientError(
                        .network,
                        "the server closed the connection after \(ready.size - remaining + UInt64(partial)) "
                            + "of \(ready.size) bytes; nothing was saved")
                }
                pipeline.submit(buffer, count: count)
                remaining -= UInt64(count)
                progress?(ready.size - remaining, ready.size)
            }
            try pipeline.finish()
            let digest = hasher.finish().hexString
            let (recordFrame, record) = try transport.receiveFrame(.getRecord, TransferRecord.self)
            guard record.sha256 == digest else {
                throw ClientError(
                    .integrity,
                    "SHA-256 mismatch: received data hashes to \(digest), the server's record "
                        + "says \(DisplayText.escaped(record.sha256)); nothing was saved")
            }
            let signed = SignedRecord.download(
                name: remoteName, size: ready.size, sha256: digest, uploader: ready.uploader ?? "",
                requestID: request.id, timestamp: recordFrame.timestamp)
            guard let signature = Data(base64Encoded: record.signature),
                serverKey.verifyPSS(signature: Array(signature), message: signed)
            else {
                throw ClientError(
                    .integrity,
                    "the download record's RSA-PSS signature does not verify with the server "
                        + "certificate; nothing was saved")
            }
            try output.commit(replace: force)
            return GetOutcome(
                localPath: target, size: ready.size, sha256: digest, signer: record.signer,
                uploader: ready.uploader)
        }
    }

    /// Returns where `get` saves `remote`: `localPath`, or inside it when it is a folder, or the
    /// remote file name in the current folder. Throws `alreadyExists` when that file exists and
    /// `force` is false, so a caller can check before it connects.
    public static func downloadTarget(remote: String, localPath: String?, force: Bool) throws -> String {
        let remotePath = try ClientError.remotePath(remote)
        let target = LocalFile.downloadTarget(localPath, remoteName: remotePath.lastComponent)
        var status = stat()
        if lstat(target, &status) == 0, status.st_mode & S_IFMT == S_IFDIR {
            throw ClientError(
                .alreadyExists,
                "\(DisplayText.quotedIfUnsafe(target)) is a local folder; name another destination, or use -r "
                    + "to fetch a remote folder into it")
        }
        if !force, FileManager.default.fileExists(atPath: target) {
            throw ClientError(.alreadyExists, "\(target) already exists; use --force to replace it")
        }
        let folder = LocalFile.parentFolder(of: target)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw ClientError(.local, "cannot save to \(target): folder \(folder) does not exist")
        }
        return target
    }

    // MARK: - Helpers

    /// Returns true when `password` also decrypts the client key, that is, it is the current one.
    private func clientKeyOpens(with password: String) -> Bool {
        (try? profile.clientKey(password: password)) != nil
    }

    /// Writes part of an upload body. When the server cut the connection, its error frame is
    /// usually already waiting and explains more than the broken pipe.
    private func writeBody(_ data: UnsafeRawBufferPointer) throws {
        do {
            try transport.channel.writeRaw(data)
        } catch {
            if let frame = try? transport.channel.receive(), frame.type == .error,
                let body = try? frame.body(ErrorBody.self)
            {
                throw ClientError(ClientError.kind(for: body.code), body.message)
            }
            throw error
        }
    }

    /// Runs a command, logging its outcome and wrapping its errors.
    private func perform<T>(_ command: String, _ fields: [String: String], _ body: () throws -> T)
        throws -> T
    {
        var logFields = [("command", command), ("user", user)]
        logFields.append(contentsOf: fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        do {
            let result = try body()
            logger.log(.info, "command.succeeded", fields: logFields)
            return result
        } catch {
            let wrapped = ClientError.wrap(error)
            logger.log(.warning, "command.failed", fields: logFields + [("error", wrapped.message)])
            throw endedSession(wrapped)
        }
    }
}
