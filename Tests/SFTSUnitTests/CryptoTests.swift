import Foundation
import SFTSCrypto
import SFTSTestSupport
import Testing

/// A CA and keys shared by the crypto tests; RSA key generation is the slow part.
enum TestPKI {
    static let caKey = try! PrivateKey.generateRSA(bits: 2048)
    static let authority = try! CertificateAuthority.create(commonName: "test CA", key: caKey, validityDays: 30)
    static let userKey = try! PrivateKey.generateRSA(bits: 2048)
}

@Suite struct DigestTests {
    @Test func sha256MatchesKnownVector() {
        #expect(
            Digest.sha256(Array("abc".utf8)).hexString
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func streamingEqualsOneShot() {
        let data = SecureRandom.bytes(100_000)
        let hasher = SHA256Hasher()
        hasher.update(Array(data[0..<33_333]))
        hasher.update(Array(data[33_333...]))
        #expect(hasher.finish() == Digest.sha256(data))
    }

    @Test func hmacMatchesRFC4231Case2() {
        let mac = Digest.hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(mac.hexString == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func constantTimeEqualComparesContentAndLength() {
        #expect(Digest.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Digest.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Digest.constantTimeEqual([1, 2, 3], [1, 2]))
    }

    @Test func hexRoundTrips() {
        let bytes: [UInt8] = [0, 1, 0xAB, 0xFF]
        #expect(bytes.hexString == "0001abff")
        #expect([UInt8](hexString: "0001ABff") == bytes)
        #expect([UInt8](hexString: "abc") == nil)
        #expect([UInt8](hexString: "zz") == nil)
        #expect(bytes.colonHexString == "00:01:AB:FF")
    }
}

@Suite struct SCRAMTests {
    /// The SCRAM-SHA-256 exchange of RFC 7677, section 3.
    @Test func matchesRFC7677Example() throws {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let keys = try SCRAM.keys(password: "pencil", salt: salt, iterations: 4096)
        let authMessage = Array(
            ("n=user,r=rOprNGfwEbeRWgbNEkqO,"
                + "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
                + "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0").utf8)
        let proof = SCRAM.clientProof(clientKey: keys.clientKey, authMessage: authMessage)
        #expect(Data(proof).base64EncodedString() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        let signature = SCRAM.serverSignature(serverKey: keys.serverKey, authMessage: authMessage)
        #expect(Data(signature).base64EncodedString() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    }

    @Test func verifierAcceptsRightPasswordOnly() throws {
        let verifier = try PasswordVerifier.derive(password: "right password here", iterations: 1000)
        let message = Array("auth message".utf8)
        let right = try SCRAM.keys(password: "right password here", salt: verifier.salt, iterations: 1000)
        let wrong = try SCRAM.keys(password: "wrong password here", salt: verifier.salt, iterations: 1000)
        #expect(
            SCRAM.verifyClientProof(
                proof: SCRAM.clientProof(clientKey: right.clientKey, authMessage: message),
                storedKey: verifier.storedKey, authMessage: message))
        #expect(
            !SCRAM.verifyClientProof(
                proof: SCRAM.clientProof(clientKey: wrong.clientKey, authMessage: message),
                storedKey: verifier.storedKey, authMessage: message))
        // A proof for one AuthMessage, such as one channel binding, fails for another.
        #expect(
            !SCRAM.verifyClientProof(
                proof: SCRAM.clientProof(clientKey: right.clientKey, authMessage: message),
                storedKey: verifier.storedKey, authMessage: Array("other message".utf8)))
        #expect(verifier.serverKey == right.serverKey)
        #expect(verifier.storedKey == Digest.sha256(right.clientKey))
    }

    @Test func verifierUsesFreshSalt() throws {
        let first = try PasswordVerifier.derive(password: "same password twice", iterations: 1000)
        let second = try PasswordVerifier.derive(password: "same password twice", iterations: 1000)
        #expect(first.salt != second.salt)
        #expect(first.storedKey != second.storedKey)
        #expect(PasswordVerifier.defaultIterations >= 600_000)
    }
}

@Suite struct KeyTests {
    @Test func pssSignatureVerifiesAndDetectsTampering() throws {
        let message = Array("upload record".utf8)
        let signature = try TestPKI.userKey.signPSS(message)
        let publicKey = TestPKI.userKey.publicKey
        #expect(publicKey.verifyPSS(signature: signature, message: message))
        #expect(!publicKey.verifyPSS(signature: signature, message: Array("upload recorD".utf8)))
        var flipped = signature
        flipped[10] ^= 1
        #expect(!publicKey.verifyPSS(signature: flipped, message: message))
        #expect(!TestPKI.caKey.publicKey.verifyPSS(signature: signature, message: message))
    }

    @Test func encryptedPEMNeedsThePassphrase() throws {
        let pem = try TestPKI.userKey.pem(passphrase: "key passphrase")
        #expect(pem.contains("ENCRYPTED PRIVATE KEY"))
        let loaded = try PrivateKey(pem: pem, passphrase: "key passphrase")
        #expect(loaded.publicKey.der == TestPKI.userKey.publicKey.der)
        #expect {
            try PrivateKey(pem: pem, passphrase: "wrong passphrase")
        } throws: { error in
            if case CryptoError.wrongPassphrase = error { return true }
            return false
        }
        #expect(throws: CryptoError.self) { try PrivateKey(pem: pem, passphrase: nil) }
    }

    @Test func rejectsUndersizedKeys() {
        #expect(throws: CryptoError.self) { try PrivateKey.generateRSA(bits: 1024) }
    }
}

@Suite struct CertificateAuthorityTests {
    @Test func issuesClientCertificateWithOnlyCAChosenExtensions() throws {
        let csr = try CertificateSigningRequest.create(commonName: "alice", key: TestPKI.userKey)
        #expect(csr.hasValidSignature)
        let certificate = try TestPKI.authority.signClientCertificate(csr, expectedName: "alice", validity: 90 * 86400)
        #expect(certificate.subjectCommonName == "alice")
        #expect(!certificate.isCertificateAuthority)
        #expect(certificate.matches(TestPKI.userKey))
        try certificate.verify(trusting: [TestPKI.authority.certificate], purpose: .tlsClient)
        #expect(throws: CryptoError.self) {
            try certificate.verify(trusting: [TestPKI.authority.certificate], purpose: .tlsServer)
        }
        #expect(certificate.notAfter <= TestPKI.authority.certificate.notAfter)
        #expect(certificate.text.contains("TLS Web Client Authentication"))
    }

    @Test func serverCertificateNamesItsHosts() throws {
        let key = try PrivateKey.generateRSA(bits: 2048)
        let certificate = try TestPKI.authority.issueServerCertificate(
            commonName: "files.example", publicKey: key.publicKey, dnsNames: ["files.example"],
            ipAddresses: ["127.0.0.1", "::1"], validityDays: 30)
        #expect(certificate.matchesHost("files.example"))
        #expect(certificate.matchesHost("127.0.0.1"))
        #expect(certificate.matchesHost("::1"))
        #expect(!certificate.matchesHost("other.example"))
        try certificate.verify(trusting: [TestPKI.authority.certificate], purpose: .tlsServer)
    }

    @Test func policyRejectsNameMismatch() throws {
        let csr = try CertificateSigningRequest.create(commonName: "mallory", key: TestPKI.userKey)
        #expect {
            try TestPKI.authority.signClientCertificate(csr, expectedName: "alice", validity: 90 * 86400)
        } throws: { error in
            if case CryptoError.policyViolation(let check, _) = error { return check == "common name" }
            return false
        }
    }

    @Test func policyRejectsForgedSignature() throws {
        let csr = try CertificateSigningRequest.create(commonName: "alice", key: TestPKI.userKey)
        // Flip one bit inside the signature at the end of the DER, then re-wrap it as PEM.
        let base64 = csr.pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        var der = Array(Data(base64Encoded: base64)!)
        der[der.count - 5] ^= 0x01
        let body = Data(der).base64EncodedString(options: .lineLength64Characters)
        let forged = try CertificateSigningRequest(
            pem: "-----BEGIN CERTIFICATE REQUEST-----\n\(body)\n-----END CERTIFICATE REQUEST-----\n")
        #expect(!forged.hasValidSignature)
        #expect {
            try TestPKI.authority.signClientCertificate(forged, expectedName: "alice", validity: 90 * 86400)
        } throws: { error in
            if case CryptoError.policyViolation(let check, _) = error { return check == "proof of possession" }
            return false
        }
    }

    @Test func policyIgnoresRequestedExtensions() throws {
        let openssl = try #require(ProcessRunner.which("openssl"))
        let folder = try TemporaryFolder()
        let config = folder.path("req.cnf")
        try Data(
            """
            [req]
            distinguished_name = dn
            req_extensions = wanted
            prompt = no
            [dn]
            CN = alice
            [wanted]
            basicConstraints = critical,CA:TRUE
            keyUsage = critical,keyCertSign,cRLSign,digitalSignature
            extendedKeyUsage = serverAuth,clientAuth
            subjectAltName = DNS:evil.example,IP:10.0.0.1
            nameConstraints = permitted;DNS:example.com

            """.utf8
        ).write(to: config)
        let made = try ProcessRunner.run(
            openssl,
            [
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", folder.path("k.pem").path, "-out",
                folder.path("r.pem").path, "-config", config.path,
            ])
        try #require(made.status == 0, "\(made)")
        let csr = try CertificateSigningRequest(pem: try String(contentsOf: folder.path("r.pem"), encoding: .utf8))
        let certificate = try TestPKI.authority.signClientCertificate(csr, expectedName: "alice", validity: 90 * 86400)
        let text = certificate.text
        #expect(text.contains("CA:FALSE"))
        #expect(!text.contains("CA:TRUE"))
        #expect(!text.contains("Certificate Sign"))
        #expect(!text.contains("TLS Web Server Authentication"))
        #expect(!text.contains("evil.example"))
        #expect(!text.contains("Name Constraints"))
    }

    @Test func policyRejectsSmallKey() throws {
        let openssl = try #require(ProcessRunner.which("openssl"))
        let folder = try TemporaryFolder()
        let made = try ProcessRunner.run(
            openssl,
            [
                "req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", folder.path("k.pem").path, "-out",
                folder.path("r.pem").path, "-subj", "/CN=alice",
            ])
        try #require(made.status == 0, "\(made)")
        let csr = try CertificateSigningRequest(pem: try String(contentsOf: folder.path("r.pem"), encoding: .utf8))
        #expect {
            try TestPKI.authority.signClientCertificate(csr, expectedName: "alice", validity: 90 * 86400)
        } throws: { error in
            if case CryptoError.policyViolation(let check, _) = error { return check == "key size" }
            return false
        }
    }
}
