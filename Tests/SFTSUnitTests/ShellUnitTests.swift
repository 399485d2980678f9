import Foundation
import SFTSProtocol
import Testing

@testable import SFTSClient
@testable import SFTSCommands

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CommandWordsTests {
    @Test(arguments: [
        ("put a.txt b.txt", ["put", "a.txt", "b.txt"]),
        ("  ls   -l\t docs ", ["ls", "-l", "docs"]),
        ("get 'name with spaces.txt'", ["get", "name with spaces.txt"]),
        (#"get "say \"hi\".txt" out"#, ["get", #"say "hi".txt"#, "out"]),
        (#"put my\ file.txt"#, ["put", "my file.txt"]),
        (#"put "back\slash""#, ["put", #"back\slash"#]),
        ("rm ''", ["rm", ""]),
        ("put a'b c'd", ["put", "ab cd"]),
        ("", []),
    ])
    func splitsLikeAShell(_ line: String, _ expected: [String]) throws {
        #expect(try CommandWords.split(line) == expected)
    }

    @Test(arguments: ["get 'open", #"get "open"#, #"put trailing\"#])
    func unbalancedQuotesAreUsageErrors(_ line: String) {
        #expect(throws: UsageError.self) { try CommandWords.split(line) }
    }
}

@Suite struct ShellCatalogTests {
    @Test func helpListsOnlyWhatTheRoleAllows() {
        let registered = ShellCatalog.overview(
            permissions: ["download", "ls", "update", "help", "exit"], role: "registered")
        #expect(registered.contains("get [options] REMOTE [LOCAL]"))
        #expect(registered.contains("ls [options] [PATH]"))
        #expect(registered.contains("passwd"))
        #expect(!registered.contains("put [options]"))
        #expect(!registered.contains("rm REMOTE"))
        #expect(registered.contains("exit"))

        let none = ShellCatalog.overview(permissions: [], role: "unregistered")
        for command in ["put", "get", "ls", "rm", "passwd"] {
            #expect(!none.contains("\n  \(command) "), "unregistered sees \(command)")
        }
        #expect(none.contains("help [COMMAND]"))
    }

    @Test func shellCommandsParseWithTheirOwnGrammar() throws {
        let put = try ParsedArguments.parse(["-r", "--force", "tree", "backup"], spec: ShellCatalog.put)
        #expect(put.flag("--recursive") && put.flag("--force"))
        #expect(put.positionals == ["tree", "backup"])
        #expect(throws: UsageError.self) {
            try ParsedArguments.parse(["--profile", "x", "a"], spec: ShellCatalog.put)
        }
        do {
            _ = try ParsedArguments.parse(["--bogus"], spec: ShellCatalog.ls)
        } catch let error as UsageError {
            #expect(error.message == "unknown option --bogus for 'ls'; see 'help ls'")
        }
        #expect(ShellCatalog.put.usage == "put [options] LOCAL [REMOTE]")
    }
}

@Suite struct LineInputTests {
    /// Lines from a pipe: line ends stripped, a last line without one kept, nil at the end.
    @Test func readsLinesAndEnd() throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        let text = "ls\r\nput a b\n\nlast"
        _ = text.utf8CString.withUnsafeBytes { write(descriptors[1], $0.baseAddress, text.utf8.count) }
        close(descriptors[1])
        let input = LineInput(descriptor: descriptors[0], closes: true)
        var lines: [String] = []
        while let line = try input.readLine(idle: 5, onIdle: {}) {
            lines.append(line)
        }
        #expect(lines == ["ls", "put a b", "", "last"])
    }

    /// While no input comes, the idle callback runs, which is how the shell keeps its session.
    @Test func callsIdleWhileWaiting() throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        let input = LineInput(descriptor: descriptors[0], closes: true)
        var idleCalls = 0
        let line = try input.readLine(idle: 0.01) {
            idleCalls += 1
            if idleCalls == 3 {
                _ = "ls\n".withCString { write(descriptors[1], $0, 3) }
                close(descriptors[1])
            }
        }
        #expect(line == "ls")
        #expect(idleCalls == 3)
    }

    @Test func rejectsEndlessLines() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sfts-line-\(UUID().uuidString)")
        try Data(repeating: UInt8(ascii: "a"), count: LineInput.maxLineBytes + 10_000).write(to: folder)
        defer { try? FileManager.default.removeItem(at: folder) }
        let input = LineInput(descriptor: open(folder.path, O_RDONLY), closes: true)
        #expect(throws: UsageError.self) { try input.readLine(idle: 5, onIdle: {}) }
    }
}

@Suite struct ProgressAndOutputTests {
    @Test func progressLineShowsBytesPercentRateAndETA() {
        let line = TerminalProgress.line(
            label: "backup.tar", done: 50 * 1024 * 1024, total: 200 * 1024 * 1024, elapsed: 5, width: 100)
        #expect(line == "backup.tar  25% 50.0 MiB/200.0 MiB 10.0 MiB/s ETA 0:15")
        let done = TerminalProgress.line(label: "a", done: 2048, total: 2048, elapsed: 3725, width: 100)
        #expect(done == "a 100% 2.0 KiB/2.0 KiB 0 B/s in 1:02:05")
    }

    @Test func longNamesAreCutFromTheLeftToFitTheTerminal() {
        let name = String(repeating: "folder/", count: 20) + "file.bin"
        let line = TerminalProgress.line(label: name, done: 1, total: 10, elapsed: 1, width: 60)
        #expect(line.count <= 60)
        #expect(line.hasPrefix("…"))
        #expect(line.contains("file.bin  10%"))
    }

    @Test func byteCountsUseBinaryUnits() {
        #expect(TerminalProgress.byteCount(0) == "0 B")
        #expect(TerminalProgress.byteCount(1023) == "1023 B")
        #expect(TerminalProgress.byteCount(1536) == "1.5 KiB")
        #expect(TerminalProgress.byteCount(5 * 1024 * 1024 * 1024) == "5.0 GiB")
    }

    @Test func jsonLinesAreSingleLineWithSortedKeys() throws {
        let line = ClientOutput.jsonLine(["remote": "a/b\nc.txt", "event": "put", "size": 3])
        #expect(!line.contains("\n"))
        #expect(line == #"{"event":"put","remote":"a/b\nc.txt","size":3}"#)
        let decoded = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(decoded?["remote"] as? String == "a/b\nc.txt")
    }
}

@Suite struct TreePlanTests {
    /// A name in a listing must be one path component, because anything else could reach outside the
    /// target folder of `get -r`.
    @Test(arguments: ["..", ".", "a/b", "../../etc", "", "x\u{0}y", "dir/../.."])
    func hostileListingNamesAreRejected(_ name: String) {
        #expect(throws: ClientError.self) {
            _ = try FileClient.childPath(of: try RemotePath("inbox"), name: name)
        }
    }

    @Test func plainNamesExtendThePath() throws {
        let child = try FileClient.childPath(of: try RemotePath("inbox/2026"), name: "report.pdf")
        #expect(child.description == "inbox/2026/report.pdf")
    }

    @Test func uploadPlanSkipsLinksAndReportsEmptyFolders() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sfts-plan-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        try fm.createDirectory(at: root.appendingPathComponent("docs/empty"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: root.appendingPathComponent("docs/b.txt"))
        try Data("yy".utf8).write(to: root.appendingPathComponent("docs/a.txt"))
        try fm.createSymbolicLink(
            atPath: root.appendingPathComponent("docs/link").path, withDestinationPath: "/etc/passwd")
        let plan = try FileClient.uploadPlan(localFolder: root.appendingPathComponent("docs").path, remoteFolder: nil)
        #expect(plan.top == "docs")
        #expect(plan.files.map(\.remote) == ["docs/a.txt", "docs/b.txt"])
        #expect(plan.totalBytes == 3)
        #expect(plan.skipped.count == 2)
        #expect(plan.skipped.contains { $0.hasSuffix("empty: empty folder, not created on the server") })
        #expect(plan.skipped.contains { $0.hasSuffix("link: symbolic link, skipped") })
    }
}

@Suite struct ServiceUnitTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The example unit's ExecStart must be a command line `sfts serve` accepts.
    @Test func exampleUnitRunsServeWithACredential() throws {
        let unit = try String(
            contentsOf: Self.repository.appendingPathComponent("contrib/sfts.service"), encoding: .utf8)
        let execStart = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let words = execStart.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
        #expect(words.first?.hasSuffix("/sfts") == true)
        #expect(words.dropFirst().first == "serve")
        let parsed = try ParsedArguments.parse(Array(words.dropFirst(2)), spec: CommandCatalog.serve)
        #expect(parsed.value("--passphrase-file") == "${CREDENTIALS_DIRECTORY}/pki-passphrase")
        #expect(unit.contains("LoadCredential=pki-passphrase:"))
        #expect(!unit.contains("SFTS_PKI_PASSPHRASE="))
    }
}
