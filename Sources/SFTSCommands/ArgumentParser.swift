import Foundation

/// A command-line mistake, with a message that states what is wrong and how to get help.
public struct UsageError: Error, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// One option a command accepts.
public struct OptionSpec: Sendable {
    /// The long name with its dashes, for example `--port`.
    public let name: String
    /// A short alias such as `-l`, if any.
    public let short: String?
    /// The placeholder of its value, for example `N`; nil for a flag.
    public let valueName: String?
    public let help: String
    /// Whether the option may be given more than once.
    public let repeatable: Bool

    public init(
        _ name: String, short: String? = nil, value: String? = nil, repeatable: Bool = false,
        help: String
    ) {
        self.name = name
        self.short = short
        valueName = value
        self.help = help
        self.repeatable = repeatable
    }

    public var isFlag: Bool { valueName == nil }
}

/// One positional argument.
public struct PositionalSpec: Sendable {
    public let name: String
    public let required: Bool
    public let help: String

    public init(_ name: String, required: Bool = true, help: String) {
        self.name = name
        self.required = required
        self.help = help
    }
}

/// A subcommand's grammar and help.
public struct CommandSpec: Sendable {
    /// The words that select the command, for example `["ca", "init"]`.
    public let path: [String]
    public let summary: String
    public let positionals: [PositionalSpec]
    public let options: [OptionSpec]
    public let details: String
    /// The word usage lines start with: `sfts`, or empty inside `sfts shell`.
    public let program: String

    public init(
        _ path: [String], summary: String, positionals: [PositionalSpec] = [],
        options: [OptionSpec], details: String = "", program: String = "sfts"
    ) {
        self.program = program
        self.path = path
        self.summary = summary
        self.positionals = positionals
        self.options = options
        self.details = details
    }

    public var name: String { path.joined(separator: " ") }

    /// The words that run the command, such as `sfts ca init`, or `put` inside the shell.
    public var invocation: String { ((program.isEmpty ? [] : [program]) + path).joined(separator: " ") }

    /// `sfts put [options] LOCAL [REMOTE]`.
    public var usage: String {
        var words = [invocation]
        if !options.isEmpty { words.append("[options]") }
        for positional in positionals {
            words.append(positional.required ? positional.name : "[\(positional.name)]")
        }
        return words.joined(separator: " ")
    }

    /// The text `sfts COMMAND --help` prints.
    public var help: String {
        var lines = ["Usage: \(usage)", "", summary]
        if !details.isEmpty {
            lines += ["", details]
        }
        if !positionals.isEmpty {
            lines += ["", "Arguments:"]
            for positional in positionals {
                lines.append(Self.row(positional.name, positional.help))
            }
        }
        lines += ["", "Options:"]
        for option in options {
            var label = option.short.map { "\($0), " } ?? ""
            label += option.name
            if let value = option.valueName { label += " \(value)" }
            lines.append(Self.row(label, option.help))
        }
        lines.append(Self.row("-h, --help", "show this help"))
        return lines.joined(separator: "\n")
    }

    private static func row(_ label: String, _ text: String) -> String {
        let padded = label.count < 26 ? label.padding(toLength: 26, withPad: " ", startingAt: 0) : label + "  "
        return "  " + padded + text
    }
}

/// The result of matching arguments against a ``CommandSpec``.
public struct ParsedArguments: Sendable {
    public let spec: CommandSpec
    public private(set) var values: [String: [String]] = [:]
    public private(set) var flags: Set<String> = []
    public private(set) var positionals: [String] = []
    public private(set) var helpRequested = false

    init(spec: CommandSpec) {
        self.spec = spec
    }

    /// Returns the last value of option `name`.
    public func value(_ name: String) -> String? {
        values[name]?.last
    }

    public func allValues(_ name: String) -> [String] {
        values[name] ?? []
    }

    public func flag(_ name: String) -> Bool {
        flags.contains(name)
    }

    public func positional(_ index: Int) -> String? {
        index < positionals.count ? positionals[index] : nil
    }

    /// Parses option `name` as an integer within `range`.
    public func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = value(name) else { return nil }
        guard let number = Int(text), range.contains(number) else {
            throw UsageError(
                "invalid value '\(text)' for \(name): expected a whole number from "
                    + "\(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// Parses option `name` as a port number (1 to 65535).
    public func port(_ name: String) throws -> UInt16? {
        try integer(name, in: 1...65535).map { UInt16($0) }
    }

    /// Parses option `name` as a number of seconds within `range`.
    public func seconds(_ name: String, in range: ClosedRange<Double>) throws -> TimeInterval? {
        guard let text = value(name) else { return nil }
        guard let number = Double(text), range.contains(number) else {
            throw UsageError(
                "invalid value '\(text)' for \(name): expected seconds from "
                    + "\(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// Parses option `name` as a duration: a number of seconds, or a number followed by `s`,
    /// `m`, `h`, `d` or `w`, such as `90d` or `30m`.
    public func duration(_ name: String, in range: ClosedRange<TimeInterval>) throws -> TimeInterval? {
        guard let text = value(name) else { return nil }
        let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604_800]
        var digits = Substring(text)
        var scale: TimeInterval = 1
        if let last = digits.last, let unit = units[last] {
            scale = unit
            digits.removeLast()
        }
        guard let number = Double(digits), number.isFinite, range.contains(number * scale) else {
            throw UsageError(
                "invalid duration '\(text)' for \(name): expected a number with s, m, h, d or w, such as 24h, "
                    + "from \(Self.spoken(range.lowerBound)) to \(Self.spoken(range.upperBound))")
        }
        return number * scale
    }

    /// Formats a duration in the largest unit that divides it, such as "12 hours" or "60 s".
    static func spoken(_ seconds: TimeInterval) -> String {
        for (size, unit) in [(86400.0, "day"), (3600.0, "hour"), (60.0, "minute")]
        where seconds >= size && seconds.truncatingRemainder(dividingBy: size) == 0 {
            let count = Int(seconds / size)
            return "\(count) \(unit)\(count == 1 ? "" : "s")"
        }
        return "\(Int(seconds)) s"
    }

    /// Parses the token list after the command words.
    static func parse(_ tokens: [String], spec: CommandSpec) throws -> ParsedArguments {
        var result = ParsedArguments(spec: spec)
        var index = 0
        var optionsEnded = false
        let seeHelp = spec.program.isEmpty ? "see 'help \(spec.name)'" : "see 'sfts \(spec.name) --help'"

        while index < tokens.count {
            let token = tokens[index]
            index += 1
            if optionsEnded || !token.hasPrefix("-") || token == "-" {
                result.positionals.append(token)
                continue
            }
            if token == "--" {
                optionsEnded = true
                continue
            }
            if token == "--help" || token == "-h" {
                result.helpRequested = true
                continue
            }

            var name = token
            var inlineValue: String?
            if token.hasPrefix("--"), let equals = token.firstIndex(of: "=") {
                name = String(token[..<equals])
                inlineValue = String(token[token.index(after: equals)...])
            }
            guard let option = spec.options.first(where: { $0.name == name || $0.short == name }) else {
                throw UsageError("unknown option \(name) for '\(spec.invocation)'; \(seeHelp)")
            }
            if option.isFlag {
                if inlineValue != nil {
                    throw UsageError("option \(option.name) takes no value; \(seeHelp)")
                }
                result.flags.insert(option.name)
                continue
            }
            let value: String
            if let inlineValue {
                value = inlineValue
            } else {
                guard index < tokens.count else {
                    throw UsageError(
                        "option \(option.name) needs a value (\(option.valueName ?? "VALUE")); \(seeHelp)")
                }
                value = tokens[index]
                index += 1
            }
            if !option.repeatable, result.values[option.name] != nil {
                throw UsageError("option \(option.name) given more than once; \(seeHelp)")
            }
            result.values[option.name, default: []].append(value)
        }

        if result.helpRequested {
            return result
        }
        let required = spec.positionals.filter(\.required).count
        if result.positionals.count < required {
            let missing = spec.positionals[result.positionals.count].name
            throw UsageError("missing argument \(missing); usage: \(spec.usage)")
        }
        if result.positionals.count > spec.positionals.count {
            let extra = result.positionals[spec.positionals.count]
            throw UsageError("unexpected argument '\(extra)'; usage: \(spec.usage)")
        }
        return result
    }
}
