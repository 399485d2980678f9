import Foundation
import SFTSLogging
import SFTSProtocol
import SFTSServer
import SFTSTestSupport
import Testing

@Suite struct RequestGuardTests {
    let now = Date(timeIntervalSince1970: 1_796_401_219)

    func code(_ id: String, _ timestamp: String, _ guardian: RequestGuard) -> WireErrorCode? {
        do {
            try guardian.check(id: id, timestamp: timestamp, now: now)
            return nil
        } catch {
            return (error as? RequestRejection)?.code
        }
    }

    @Test func acceptsFreshRequestOnce() {
        let guardian = RequestGuard(tolerance: 30)
        let stamp = Timestamp.format(now)
        #expect(code("id-00000001", stamp, guardian) == nil)
        #expect(code("id-00000001", stamp, guardian) == .replayedRequest)
        #expect(code("id-00000002", stamp, guardian) == nil)
    }

    /// A flood of requests from one client runs into its share of the replay cache, and other
    /// clients are still served. Once the ids expire, the client may go on.
    @Test func oneClientCannotFillTheReplayCache() {
        let guardian = RequestGuard(tolerance: 30, maxRemembered: 1000, maxRememberedPerClient: 100)
        let stamp = Timestamp.format(now)
        for index in 0..<guardian.maxRememberedPerClient {
            try? guardian.check(id: "flood-\(index)-aaaa", timestamp: stamp, client: "user mallory", now: now)
        }
        let refused = #expect(throws: RequestRejection.self) {
            try guardian.check(id: "flood-next-aaaa", timestamp: stamp, client: "user mallory", now: now)
        }
        #expect(refused?.code == .busy)
        #expect(throws: Never.self) {
            try guardian.check(id: "other-0001", timestamp: stamp, client: "user alice", now: now)
        }
        let later = now + 62
        #expect(throws: Never.self) {
            try guardian.check(
                id: "flood-late-aaaa", timestamp: Timestamp.format(later), client: "user mallory", now: later)
        }
    }

    /// Ten clients at their share fill the cache, so the next client gets a `busy` rejection.
    @Test func fullReplayCacheRejectsNewClients() {
        let guardian = RequestGuard(tolerance: 30, maxRemembered: 100, maxRememberedPerClient: 10)
        let stamp = Timestamp.format(now)
        for client in 0..<10 {
            for index in 0..<10 {
                #expect(throws: Never.self) {
                    try guardian.check(
                        id: "fill-\(client)-\(index)-aaaa", timestamp: stamp, client: "user \(client)", now: now)
                }
            }
        }
        let refused = #expect(throws: RequestRejection.self) {
            try guardian.check(id: "late-comer-0001", timestamp: stamp, client: "user 10", now: now)
        }
        #expect(refused?.code == .busy)
    }

    @Test func rejectsOutsideToleranceBothWays() {
        let guardian = RequestGuard(tolerance: 30)
        #expect(code("id-00000003", Timestamp.format(now + 31), guardian) == .staleTimestamp)
        #expect(code("id-00000004", Timestamp.format(now - 31), guardian) == .staleTimestamp)
        #expect(code("id-00000005", Timestamp.format(now + 29), guardian) == nil)
        #expect(code("id-00000006", "2126-12-04T16:20:19Z", guardian) == .staleTimestamp)
    }

    @Test func rejectsZonelessAndMalformedTimestamps() {
        let guardian = RequestGuard(tolerance: 30)
        #expect(code("id-00000007", "2026-12-04T16:20:19", guardian) == .invalidRequest)
        #expect(code("id-00000008", "now", guardian) == .invalidRequest)
        #expect(code("bad id!", Timestamp.format(now), guardian) == .invalidRequest)
        #expect(code("short", Timestamp.format(now), guardian) == .invalidRequest)
    }
}

@Suite struct LogLineTests {
    @Test func escapesValuesSoOneEventIsOneLine() {
        let line = LogLine.format(
            date: Date(timeIntervalSince1970: 0), level: .warning, event: "login.failed",
            fields: [("user", "eve\nINFO login.succeeded user=admin"), ("note", "a \"quoted\" value"), ("path", "a=b")])
        #expect(!line.contains("\n"))
        #expect(line.hasPrefix("1970-01-01T00:00:00.000Z WARN login.failed "))
        #expect(line.contains(#"user="eve\nINFO login.succeeded user=admin""#))
        #expect(line.contains(#"note="a \"quoted\" value""#))
        #expect(line.contains(#"path="a=b""#))
    }

    @Test func escapesBidirectionalOverrides() {
        #expect(LogLine.escape("a\u{202E}b\u{2066}c") == "a\\u{202E}b\\u{2066}c")
        #expect(LogLine.escape("zero\u{200B}width") == "zero\\u{200B}width")
    }

    @Test func escapesControlAndSeparatorCharacters() {
        #expect(LogLine.escape("a\u{1B}[31mb") == "a\\u{1B}[31mb")
        #expect(LogLine.escape("a\u{2028}b") == "a\\u{2028}b")
        #expect(LogLine.escape("tab\there") == "tab\\there")
        #expect(LogLine.escape("") == "\"\"")
        #expect(LogLine.escape("plain") == "plain")
    }

    @Test func loggerWritesOneLinePerEvent() throws {
        let folder = try TemporaryFolder()
        let file = folder.path("logs/test.log")
        let logger = try Logger(file: file)
        logger.info("first", ["user": "a\nb"])
        logger.debug("dropped")
        logger.error("second")
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(text.split(separator: "\n").count == 2)
        #expect(!text.contains("dropped"))
        let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }
}

@Suite struct RolePolicyTests {
    @Test func defaultsMatchTheDocumentedRoles() {
        let policy = RolePolicy.defaults
        #expect(policy.allows("admin", .modify))
        #expect(policy.allows("user", .upload))
        #expect(!policy.allows("registered", .upload))
        #expect(policy.allows("registered", .download))
        #expect(!policy.allows("unregistered", .ls))
        #expect(!policy.allows("nosuchrole", .help))
    }

    @Test func loadRejectsUnknownPermission() throws {
        let folder = try TemporaryFolder()
        let file = folder.path("roles.json")
        try Data(#"{"user": ["upload", "fly"]}"#.utf8).write(to: file)
        #expect {
            try RolePolicy.load(from: file)
        } throws: { error in
            String(describing: error).contains("unknown permission 'fly'")
        }
        try Data(#"{"user": ["upload", "ls"]}"#.utf8).write(to: file)
        #expect(try RolePolicy.load(from: file).allows("user", .ls))
    }
}

@Suite struct FileStoreTests {
    let folder: TemporaryFolder
    let store: FileStore

    init() throws {
        folder = try TemporaryFolder()
        let root = folder.path("directory")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        store = FileStore(root: root)
    }

    func upload(_ name: String, _ text: String, replace: Bool = false) throws {
        let upload = try store.beginUpload(try RemotePath(name))
        try Array(text.utf8).withUnsafeBytes { try upload.write($0) }
        try store.commit(upload, replace: replace)
    }

    @Test func commitRefusesToReplaceUnlessAsked() throws {
        try upload("a.txt", "first")
        #expect(throws: FileStoreError.alreadyExists("a.txt")) { try upload("a.txt", "second") }
        #expect(try String(contentsOf: folder.path("directory/a.txt"), encoding: .utf8) == "first")
        try upload("a.txt", "third", replace: true)
        #expect(try String(contentsOf: folder.path("directory/a.txt"), encoding: .utf8) == "third")
    }

    @Test func abandonedUploadLeavesNothing() throws {
        do {
            let upload = try store.beginUpload(try RemotePath("partial.bin"))
            try Array("half".utf8).withUnsafeBytes { try upload.write($0) }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path("directory").path)
        #expect(names.isEmpty)
    }

    @Test func symlinkedFolderIsNotFollowed() throws {
        let outside = folder.path("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try Data("secret".utf8).write(to: outside.appendingPathComponent("secret.txt"))
        try FileManager.default.createSymbolicLink(at: folder.path("directory/link"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(
            at: folder.path("directory/file-link"), withDestinationURL: outside.appendingPathComponent("secret.txt"))

        #expect(throws: FileStoreError.symbolicLink("link")) { try store.list(try RemotePath("link")) }
        #expect(throws: FileStoreError.symbolicLink("link")) {
            try store.openForReading(try RemotePath("link/secret.txt"))
        }
        #expect(throws: FileStoreError.symbolicLink("file-link")) {
            try store.openForReading(try RemotePath("file-link"))
        }
        #expect(throws: FileStoreError.symbolicLink("link")) { try upload("link/new.txt", "x") }
        #expect(throws: FileStoreError.symbolicLink("link")) { try store.remove(try RemotePath("link/secret.txt")) }
        #expect(FileManager.default.fileExists(atPath: outside.appendingPathComponent("secret.txt").path))
        #expect(!FileManager.default.fileExists(atPath: outside.appendingPathComponent("new.txt").path))
        // Listings show neither link.
        #expect(try store.list(try RemotePath("", allowRoot: true)).isEmpty)
    }

    @Test func linksAndPipesAreNeitherRemovedNorReplaced() throws {
        try FileManager.default.createSymbolicLink(
            at: folder.path("directory/link"), withDestinationURL: folder.path("elsewhere"))
        #expect(mkfifo(folder.path("directory/pipe").path, 0o600) == 0)
        #expect(throws: FileStoreError.symbolicLink("link")) { try store.remove(try RemotePath("link")) }
        #expect(throws: FileStoreError.notAFile("pipe")) { try store.remove(try RemotePath("pipe")) }
        #expect(throws: FileStoreError.symbolicLink("link")) { try upload("link", "x", replace: true) }
        #expect(throws: FileStoreError.notAFile("pipe")) { try upload("pipe", "x", replace: true) }
        let linkTarget = try FileManager.default.destinationOfSymbolicLink(atPath: folder.path("directory/link").path)
        #expect(linkTarget == folder.path("elsewhere").path)
    }

    @Test func nestedUploadCreatesFoldersAndListsThem() throws {
        try upload("reports/2026/q4.txt", "numbers")
        let top = try store.list(try RemotePath("", allowRoot: true))
        #expect(top.map(\.name) == ["reports"])
        #expect(top.first?.isFolder == true)
        let inner = try store.list(try RemotePath("reports/2026"))
        #expect(inner.map(\.name) == ["q4.txt"])
        #expect(inner.first?.size == 7)
        #expect(throws: FileStoreError.folderNotEmpty("reports")) { try store.remove(try RemotePath("reports")) }
    }

    @Test func staleTemporariesRemovedAtStart() throws {
        try FileManager.default.createDirectory(at: folder.path("directory/sub"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: folder.path("directory/.sfts-tmp-123"))
        try Data("y".utf8).write(to: folder.path("directory/sub/.sfts-tmp-456"))
        try Data("z".utf8).write(to: folder.path("directory/sub/keep.txt"))
        #expect(store.removeStaleTemporaries() == 2)
        #expect(FileManager.default.fileExists(atPath: folder.path("directory/sub/keep.txt").path))
    }
}

@Suite struct AddressGuardTests {
    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1"), ("::ffff:10.1.2.3", "10.1.2.3"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"), ("::1", "::/64"), ("fe80::1", "fe80::/64"),
    ])
    func keyGroupsIPv6By64(_ address: String, _ key: String) {
        #expect(AddressGuard.key(for: address) == key)
    }

    @Test func thresholdWithinWindowBlocks() throws {
        let folder = try TemporaryFolder()
        let store = JSONAuthenticationFailureStore(
            failures: folder.path("auth_failures.json"), blocks: folder.path("blocked_ip.json"))
        var policy = BlockPolicy()
        policy.threshold = 3
        policy.window = 60
        policy.duration = 600
        let guardian = AddressGuard(store: store, policy: policy, logger: .discarding)
        let start = Date(timeIntervalSince1970: 1_800_000_000)

        #expect(guardian.recordFailure(for: "192.0.2.1", reason: "r", at: start) == nil)
        #expect(guardian.recordFailure(for: "192.0.2.1", reason: "r", at: start + 10) == nil)
        // The first failure has left the 60 s window, so this is two of three, not three.
        #expect(guardian.recordFailure(for: "192.0.2.1", reason: "r", at: start + 65) == nil)
        let block = try #require(guardian.recordFailure(for: "192.0.2.1", reason: "last", at: start + 66))
        #expect(block.failures == 3)
        #expect(block.lastReason == "last")
        #expect(guardian.activeBlock(for: "192.0.2.1", at: start + 67) != nil)
        #expect(guardian.activeBlock(for: "192.0.2.2", at: start + 67) == nil)
        #expect(guardian.activeBlock(for: "192.0.2.1", at: start + 667) == nil)
        #expect(try store.lift("192.0.2.1") == true)
        #expect(try store.lift("192.0.2.1") == false)
    }

    @Test func successClearsFailures() throws {
        let folder = try TemporaryFolder()
        let store = JSONAuthenticationFailureStore(
            failures: folder.path("auth_failures.json"), blocks: folder.path("blocked_ip.json"))
        let guardian = AddressGuard(store: store, policy: BlockPolicy(), logger: .discarding)
        guardian.recordFailure(for: "192.0.2.9", reason: "r")
        guardian.recordFailure(for: "192.0.2.9", reason: "r")
        guardian.recordSuccess(for: "192.0.2.9")
        #expect(guardian.recordFailure(for: "192.0.2.9", reason: "r") == nil)
    }
}
