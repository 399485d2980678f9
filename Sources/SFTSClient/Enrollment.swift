import Foundation
import SFTSCrypto
import SFTSLogging
import SFTSProtocol
import SFTSTLS

/// The inputs of `sfts enroll`.
public struct EnrollmentRequest: Sendable {
    public var server: String
    public var port: UInt16
    public var enrollmentPort: UInt16
    public var user: String
    public var password: String
    /// The host code as typed; it is normalised before use. Empty when `token` is set.
    public var hostCode: String
    /// A one-time token from `sfts ca token`, used in place of the host code. It also pins the
    /// CA fingerprint.
    public var token: EnrollmentToken?
    public var keyBits: Int
    public var profileName: String
    /// Replace an existing profile of the same name.
    public var force: Bool
    /// The SHA-256 fingerprint the server's CA certificate must have, as `sfts ca init` prints
    /// it. Everyone invited holds the host code, so only this pin tells the real server from
    /// another holder of the code posing as it.
    public var caFingerprint: String?
    public var timeouts = ClientTimeouts()

    public init(
        server: String, port: UInt16, enrollmentPort: UInt16, user: String, password: String,
        hostCode: String, keyBits: Int, profileName: String, force: Bool
    ) {
        self.server = server
        self.port = port
        self.enrollmentPort = enrollmentPort
        self.user = user
        self.password = password
        self.hostCode = hostCode
        self.keyBits = keyBits
        self.profileName = profileName
        self.force = force
    }
}

/// What an enrollment produced: the new profile and the role the server reports.
public struct EnrollmentResult: Sendable {
    public let profile: Profile
    public let role: String
}

/// Enrollment, client side: prove the host code, check the server's proof and its CA, send a
/// CSR and the password, and store the issued certificate in a new profile.
public enum Enrollment {
    public static func enroll(_ request: EnrollmentRequest, home: ClientHome, logger: Logger) throws
        -> EnrollmentResult
    {
        do {
            return try run(request, home: home, logger: logger)
        } catch {
            let wrapped = ClientError.wrap(error)
            logger.warning(
                "enroll.failed",
                ["server": request.server, "user": request.user, "error": wrapped.message])
            throw wrapped
        }
    }

    private static func run(_ request: EnrollmentRequest, home: ClientHome, logger: Logger) throws
        -> EnrollmentResult
    {
        if let problem = UserName.problem(with: request.user) {
            throw ClientError(.rejected, "invalid user name '\(request.user)': \(problem)")
        }
        if let problem = Profile.problem(withName: request.profileName) {
            throw ClientError(.local, "invalid profile name '\(request.profileName)': \(problem)")
        }
        if !request.force,
            FileManager.default.fileExists(atPath: home.profileFolder(request.profileName).path)
        {
            throw ClientError(
                .alreadyExists,
                "profile '\(request.profileName)' already exists in \(home.profilesFolder.path); "
                    + "choose another with --profile NAME or replace it with --force")
        }
        let key: [UInt8]
        var pins: [(String, [UInt8])] = []
        if let token = request.token {
            guard token.user == request.user else {
                throw ClientError(
                    .invalidInput, "the token is for user '\(token.user)', not '\(request.user)'")
            }
            guard token.expiryDate > Date() else {
                throw ClientError(
                    .authentication,
                    "the token expired at \(Timestamp.format(token.expiryDate)); ask the operator for a new one")
            }
            key = [UInt8](hexString: token.secret) ?? []
            pins.append(("the token", [UInt8](hexString: token.ca) ?? []))
        } else {
            guard let hostCode = HostCode.normalize(request.hostCode) else {
                throw ClientError(
                    .invalidInput,
                    "invalid host code: expected \(HostCode.length) characters such as "
                        + "XXXX-XXXX-...; copy it from 'sfts ca init' output")
            }
            key = Array(hostCode.utf8)
        }
        if let pinned = request.caFingerprint {
            guard let bytes = Enrollment.parseFingerprint(pinned) else {
                throw ClientError(.invalidInput, "invalid --ca-fingerprint '\(pinned)'")
            }
            pins.append(("--ca-fingerprint", bytes))
        }
        let password = PasswordPolicy.normalize(request.password)
        do {
            try PasswordPolicy().check(password, user: request.user)
        } catch {
            throw ClientError.wrap(error)
        }

        logger.info(
            "enroll.started",
            ["server": request.server, "port": String(request.enrollmentPort), "user": request.user])
        let transport = try ClientTransport(
            host: request.server, port: request.enrollmentPort,
            context: try TLSContext.client(trusting: nil), timeouts: request.timeouts)
        defer { transport.close() }
        let channelBinding = try transport.connection.channelBinding()

        let clientNonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        let challenge: EnrollChallenge
        do {
            try transport.send(
                .enrollStart, EnrollStart(user: request.user, nonce: clientNonce, token: request.token?.id))
            challenge = try transport.receive(.enrollChallenge, EnrollChallenge.self)
        } catch TLSError.certificateRejectedByPeer {
            throw ClientError(
                .network,
                "\(request.server):\(request.enrollmentPort) asks for a client certificate, so it is the file "
                    + "service, not the enrollment service; check --csr-port")
        }

        let caCertificate: Certificate
        do {
            caCertificate = try Certificate(pem: challenge.caCertificate)
        } catch {
            throw ClientError(.network, "the server sent an invalid CA certificate: \(error)")
        }
        // A pinned CA is checked before the client proves anything or trusts the server.
        for (source, expected) in pins where expected != caCertificate.sha256Fingerprint {
            throw ClientError(
                .authentication,
                "the server's CA fingerprint \(caCertificate.sha256Fingerprint.colonHexString) does not match "
                    + "\(source) (\(expected.colonHexString)); the server may be an impostor, so nothing was sent")
        }

        let clientProof = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "client", user: request.user, clientNonce: clientNonce,
                serverNonce: challenge.nonce, channelBinding: channelBinding, caFingerprint: []))
        try transport.send(
            .enrollProof, EnrollProof(proof: Data(clientProof).base64EncodedString()), continuesExchange: true)
        let accepted = try transport.receive(.enrollAccepted, EnrollAccepted.self)

        let expectedProof = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "server", user: request.user, clientNonce: clientNonce,
                serverNonce: challenge.nonce, channelBinding: channelBinding,
                caFingerprint: caCertificate.sha256Fingerprint))
        guard let serverProof = Data(base64Encoded: accepted.proof),
            Digest.constantTimeEqual(Array(serverProof), expectedProof)
        else {
            throw ClientError(
                .authentication,
                "the server did not prove that it has the host code or token for this connection; "
                    + "someone may be intercepting it, so nothing was sent")
        }
        try checkServerCertificate(transport.connection, ca: caCertificate, host: request.server)

        let clientKey = try PrivateKey.generateRSA(bits: request.keyBits)
        let csr = try CertificateSigningRequest.create(commonName: request.user, key: clientKey)
        try transport.send(.enrollRequest, EnrollRequest(csr: csr.pem, password: password), continuesExchange: true)
        let completed = try transport.receive(.enrollCompleted, EnrollCompleted.self)

        let certificate: Certificate
        do {
            certificate = try Certificate(pem: completed.certificate)
            try certificate.verify(trusting: [caCertificate], purpose: .tlsClient)
        } catch {
            throw ClientError(.integrity, "the issued certificate does not verify: \(error)")
        }
        guard certificate.matches(clientKey), certificate.subjectCommonName == request.user else {
            throw ClientError(
                .integrity, "the issued certificate is not for this key and user name")
        }

        let settings = ProfileSettings(
            server: request.server, port: request.port, csrPort: request.enrollmentPort,
            user: request.user, caFingerprint: caCertificate.sha256Fingerprint.colonHexString,
            enrolledAt: Timestamp.format(Date()))
        let profile = try Profile.write(
            name: request.profileName, home: home, settings: settings, caCertificate: caCertificate,
            certificate: certificate, encryptedKeyPEM: try clientKey.pem(passphrase: password))
        logger.info(
            "enroll.completed",
            [
                "server": request.server, "user": request.user, "profile": request.profileName,
                "role": completed.role, "certificate.serial": certificate.serialNumberHex,
            ])
        return EnrollmentResult(profile: profile, role: completed.role)
    }

    /// Parses a SHA-256 fingerprint written as hexadecimal, with or without colons, in any case.
    public static func parseFingerprint(_ text: String) -> [UInt8]? {
        let hex = text.replacingOccurrences(of: ":", with: "").trimmingCharacters(in: .whitespaces)
        guard let bytes = [UInt8](hexString: hex), bytes.count == 32 else { return nil }
        return bytes
    }

    /// Checks that the server's TLS certificate comes from the CA it sent and names the host the
    /// user typed. The host code proofs have authenticated the channel by then, and later
    /// commands verify the same certificate with ordinary TLS.
    private static func checkServerCertificate(
        _ connection: TLSConnection, ca: Certificate, host: String
    ) throws {
        guard let serverCertificate = connection.peerCertificate else {
            throw ClientError(.network, "the server presented no certificate")
        }
        do {
            try serverCertificate.verify(trusting: [ca], purpose: .tlsServer)
        } catch {
            throw ClientError(
                .network, "the server certificate does not verify against its own CA: \(error)")
        }
        guard serverCertificate.matchesHost(host) else {
            let names = serverCertificate.subjectAlternativeNames.joined(separator: ", ")
            throw ClientError(
                .network,
                "the server certificate does not name '\(host)'; use one of the names it was issued for "
                    + "(\(names)), or ask the operator to add it (sfts ca server-cert --host)")
        }
    }
}
