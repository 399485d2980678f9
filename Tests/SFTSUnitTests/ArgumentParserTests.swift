import Foundation
import Testing

@testable import SFTSCommands

@Suite struct ArgumentParserTests {
    func usageMessage(_ arguments: [String]) -> String? {
        do {
            _ = try CommandLineTool.dispatch(arguments)
            return nil
        } catch let error as UsageError {
            return error.message
        } catch {
            return "unexpected: \(error)"
        }
    }

    @Test(arguments: [
        (["put"], "missing argument LOCAL; usage: sfts put [options] LOCAL [REMOTE]"),
        (["put", "a", "b", "c"], "unexpected argument 'c'; usage: sfts put [options] LOCAL [REMOTE]"),
        (["ls", "--bogus"], "unknown option --bogus for 'sfts ls'; see 'sfts ls --help'"),
        (["serve", "--port"], "option --port needs a value (N); see 'sfts serve --help'"),
        (["serve", "--port", "99999"], "invalid value '99999' for --port: expected a whole number from 1 to 65535"),
        (["ls", "--long=yes"], "option --long takes no value; see 'sfts ls --help'"),
        (
            ["get", "--profile", "a", "--profile", "b", "x"],
            "option --profile given more than once; see 'sfts get --help'"
        ),
        (["frobnicate"], "unknown command 'frobnicate'; run 'sfts help' for the list"),
        (["user"], "'sfts user' needs a subcommand: list, role, remove"),
        (["help", "nothing"], "no help for 'nothing'; run 'sfts help' for the list of commands"),
        (["enroll", "--user", "alice"], "missing --server HOST; usage: sfts enroll [options]"),
    ])
    func usageErrorsNameTheProblem(_ arguments: [String], _ expected: String) {
        #expect(usageMessage(arguments) == expected)
    }

    @Test func parsesOptionsFlagsAndPositionals() throws {
        let parsed = try ParsedArguments.parse(
            ["-l", "--profile=work", "--", "-dash-name"], spec: CommandCatalog.ls)
        #expect(parsed.flag("--long"))
        #expect(parsed.value("--profile") == "work")
        #expect(parsed.positionals == ["-dash-name"])
    }

    @Test func repeatableOptionCollectsValues() throws {
        let parsed = try ParsedArguments.parse(["--host", "a", "--host", "b"], spec: CommandCatalog.caInit)
        #expect(parsed.allValues("--host") == ["a", "b"])
    }

    @Test func helpForEveryCommandListsItsOptions() {
        for spec in CommandCatalog.all {
            let help = spec.help
            #expect(help.hasPrefix("Usage: sfts \(spec.name)"))
            for option in spec.options {
                #expect(help.contains(option.name), "\(spec.name) help lacks \(option.name)")
            }
        }
    }

    @Test func exitCodesAreDistinct() {
        let codes = ExitCode.allCases.map(\.rawValue)
        #expect(Set(codes).count == codes.count)
    }
}

@Suite struct ManualCoverageTests {
    static let manual: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("man/sfts.1"), encoding: .utf8)) ?? ""
    }()

    /// The text of the `.Ss NAME` section that documents a command, up to the next heading.
    static func section(_ name: String) -> String? {
        guard let start = manual.range(of: "\n.Ss \(name)\n") else { return nil }
        let rest = manual[start.upperBound...]
        let end =
            [rest.range(of: "\n.Ss ")?.lowerBound, rest.range(of: "\n.Sh ")?.lowerBound]
            .compactMap { $0 }.min() ?? rest.endIndex
        return String(rest[..<end])
    }

    @Test func manualNamesEveryCommandAndOption() {
        #expect(!Self.manual.isEmpty, "man/sfts.1 not found")
        let synopsis = Self.manual.components(separatedBy: "\n.Sh DESCRIPTION")[0]
        for spec in CommandCatalog.all {
            #expect(synopsis.contains(spec.name), "the SYNOPSIS of man/sfts.1 lacks '\(spec.name)'")
            guard let section = Self.section(spec.name) else {
                Issue.record("man/sfts.1 has no section '.Ss \(spec.name)'")
                continue
            }
            for option in spec.options {
                #expect(section.contains(option.name), "man/sfts.1 lacks \(option.name) under '\(spec.name)'")
                if let short = option.short {
                    #expect(
                        section.contains("Fl \(short.dropFirst())"),
                        "man/sfts.1 lacks \(short) under '\(spec.name)'")
                }
            }
        }
    }

    @Test func manualDocumentsEveryExitCode() {
        for code in ExitCode.allCases {
            #expect(Self.manual.contains(".It \(code.rawValue)\n"), "man/sfts.1 lacks exit status \(code.rawValue)")
        }
    }
}
