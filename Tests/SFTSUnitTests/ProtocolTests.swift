import Foundation
import SFTSProtocol
import Testing

@Suite struct TimestampTests {
    @Test func formatIsUTCWithMilliseconds() {
        let date = Date(timeIntervalSince1970: 1_796_401_219.123)
        #expect(Timestamp.format(date) == "2026-12-04T16:20:19.123Z")
    }

    @Test func parseRoundTrips() throws {
        let date = Date(timeIntervalSince1970: 1_796_401_219.5)
        let parsed = try #require(Timestamp.parse(Timestamp.format(date)))
        #expect(abs(parsed.timeIntervalSince(date)) < 0.001)
    }

    @Test func parseAcceptsOffsetsAndWholeSeconds() throws {
        let utc = try #require(Timestamp.parse("2026-12-04T16:20:19Z"))
        let plusTwo = try #require(Timestamp.parse("2026-12-04T18:20:19+02:00"))
        let minusFive = try #require(Timestamp.parse("2026-12-04T11:20:19.000-05:00"))
        #expect(utc == plusTwo)
        #expect(utc == minusFive)
    }

    @Test(arguments: [
        "2026-12-04T16:20:19", "2026-12-04T16:20:19.123", "2026-12-04 16:20:19Z", "2026-13-04T16:20:19Z",
        "2026-02-30T16:20:19Z", "2026-12-04T24:00:00Z", "2026-12-04T16:60:19Z", "2026-12-04T16:20:61Z",
        "2026-12-04T16:20:19.Z", "2026-12-04T16:20:19+0200", "yesterday", "", "2026-12-04T16:20:19Zjunk",
        "1e9", "2026-12-04T16:20:19.1234567890Z",
    ])
    func parseRejectsMalformed(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }
}

@Suite struct RemotePathTests {
    @Test(arguments: [
        ("..", "'.' and '..'"), ("a/../b", "'.' and '..'"), ("./a", "'.' and '..'"), ("/etc/passwd", "absolute"),
        ("a\nb", "control character"), ("a\u{0}b", "NUL"), ("a\\b", "backslash"), ("a//b", "empty component"),
        ("a/", "empty component"), ("", "empty"), (".sfts-tmp-x", "reserved"), ("a\u{202E}txt.exe", "bidirectional"),
        (String(repeating: "x", count: 256), "longer than 255"), ("a\u{7F}", "control character"),
        ("a\u{85}b", "control character"), ("a\u{200B}.txt", "invisible"), ("a\u{A0}b.txt", "invisible"),
        ("a\u{2060}.txt", "invisible"), ("\u{FEFF}a.txt", "invisible"), ("a\u{AD}b", "invisible"),
        ("a\u{E000}", "invisible"), (Array(repeating: "d", count: 33).joined(separator: "/"), "levels"),
    ])
    func rejectsHostileNames(_ name: String, _ reason: String) {
        #expect {
            _ = try RemotePath(name)
        } throws: { error in
            (error as? InvalidNameError)?.reason.contains(reason) == true
        }
    }

    @Test func acceptsNestedAndUnicodeNames() throws {
        let path = try RemotePath("reports/2026/Grüße a|b.txt")
        #expect(path.components == ["reports", "2026", "Grüße a|b.txt"])
        #expect(path.lastComponent == "Grüße a|b.txt")
    }

    @Test func normalisesToNFC() throws {
        let decomposed = "Gru\u{0308}sse"
        let path = try RemotePath(decomposed)
        #expect(path.description.unicodeScalars.count == "Grüsse".unicodeScalars.count)
        #expect(path == (try RemotePath("Grüsse")))
    }

    @Test func emptyPathOnlyWhereRootIsAllowed() throws {
        #expect((try RemotePath("", allowRoot: true)).isRoot)
        #expect(throws: InvalidNameError.self) { try RemotePath("") }
    }

    @Test func quotedEscapesControlCharacters() {
        #expect(RemotePath.quoted("a\nb") == "'a\\u{A}b'")
        #expect(RemotePath.needsQuoting("a\u{1B}[31m"))
        #expect(!RemotePath.needsQuoting("plain name.txt"))
    }
}

@Suite struct UserNameTests {
    @Test(arguments: ["alice", "bob-2", "_svc", "a.b_c-d", String(repeating: "a", count: 32)])
    func acceptsValidNames(_ name: String) {
        #expect(UserName.problem(with: name) == nil)
    }

    @Test(arguments: [
        "", "Alice", "1alice", "-x", "al ice", "al/ice", "alice\n", "ålice", String(repeating: "a", count: 33),
    ])
    func rejectsInvalidNames(_ name: String) {
        #expect(UserName.problem(with: name) != nil)
    }
}

@Suite struct PasswordPolicyTests {
    let policy = PasswordPolicy(blocked: ["passwordpassword", "Correct Horse Battery Staple"])

    @Test func acceptsLongPassphrases() throws {
        try policy.check("amber lantern orbit staple", user: "alice")
        try policy.check("pässwörter sind länger als fünfzehn", user: "alice")
    }

    @Test func rejectsShortPasswordWithLength() {
        #expect(throws: PasswordPolicyError.self) { try policy.check("fourteen chars", user: "alice") }
        do {
            try policy.check("short", user: "alice")
        } catch {
            #expect((error as? PasswordPolicyError)?.reason.contains("5 characters") == true)
        }
    }

    @Test func rejectsBlockedCaseInsensitively() {
        #expect(throws: PasswordPolicyError.self) { try policy.check("PasswordPassword", user: "alice") }
        #expect(throws: PasswordPolicyError.self) { try policy.check("correct horse battery staple", user: "alice") }
    }

    @Test func rejectsUserNameRepetitionAndControls() {
        #expect(throws: PasswordPolicyError.self) { try policy.check("my name is alice, okay", user: "alice") }
        #expect(throws: PasswordPolicyError.self) { try policy.check("aaaaaaaaaaaaaaaaaaaa", user: "bob") }
        #expect(throws: PasswordPolicyError.self) { try policy.check("tab\tinside a long password", user: "bob") }
        #expect(throws: PasswordPolicyError.self) {
            try policy.check(String(repeating: "abcdefgh", count: 17), user: "bob")
        }
    }

    @Test func normalisesCompatibilityForms() {
        // The ligature and the full-width letters read as their plain forms under NFKC.
        #expect(PasswordPolicy.normalize("\u{FB01}le ＡＢＣ") == "file ABC")
    }
}

@Suite struct HostCodeTests {
    @Test func formatsGroupsOfFour() {
        let code = HostCode.format(randomBytes: [UInt8](repeating: 0xFF, count: 20))
        #expect(code == "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ")
        let zeros = HostCode.format(randomBytes: [UInt8](repeating: 0, count: 20))
        #expect(zeros == "0000-0000-0000-0000-0000-0000-0000-0000")
    }

    @Test func normalizeForgivesTypingHabits() throws {
        let code = HostCode.format(randomBytes: Array(0..<20))
        let typed = code.lowercased().replacingOccurrences(of: "-", with: " ").replacingOccurrences(of: "0", with: "o")
        #expect(HostCode.normalize(typed) == code.replacingOccurrences(of: "-", with: ""))
    }

    @Test func normalizeRejectsWrongLengthAndLetters() {
        #expect(HostCode.normalize("ABCD-EFGH") == nil)
        #expect(HostCode.normalize(String(repeating: "U", count: 32)) == nil)
    }
}

@Suite struct TranscriptTests {
    @Test func lengthPrefixKeepsFieldsApart() {
        var first = Transcript(label: "t")
        first.append("ab")
        first.append("c")
        var second = Transcript(label: "t")
        second.append("a")
        second.append("bc")
        #expect(first.bytes != second.bytes)
    }

    @Test func uploadAndDownloadRecordsDiffer() {
        let upload = SignedRecord.upload(name: "f", size: 1, sha256: "00", requestID: "id", timestamp: "t")
        let download = SignedRecord.download(
            name: "f", size: 1, sha256: "00", uploader: "", requestID: "id", timestamp: "t")
        #expect(upload != download)
    }

    @Test func enrollmentProofInputDependsOnRole() {
        let client = SignedRecord.enrollment(
            role: "client", user: "u", clientNonce: "a", serverNonce: "b", channelBinding: [1], caFingerprint: [])
        let server = SignedRecord.enrollment(
            role: "server", user: "u", clientNonce: "a", serverNonce: "b", channelBinding: [1], caFingerprint: [])
        #expect(client != server)
    }
}

@Suite struct DisplayTextTests {
    @Test func escapesTerminalControls() {
        #expect(DisplayText.escaped("\u{1B}[2J\u{1B}]0;owned\u{7}") == "\\u{1B}[2J\\u{1B}]0;owned\\u{7}")
        #expect(DisplayText.escaped("evil\u{202E}gpj.exe") == "evil\\u{202E}gpj.exe")
        #expect(DisplayText.escaped("Grüße 日本") == "Grüße 日本")
    }
}
