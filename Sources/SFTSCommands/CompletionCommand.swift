import Foundation

/// `sfts completion bash|zsh`: completion scripts made from ``CommandCatalog``, so they know
/// every command and option the parser knows.
enum CompletionCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        switch arguments.positional(0)! {
        case "bash":
            Console.out(bash())
        case "zsh":
            Console.out(zsh())
        case let other:
            throw UsageError("no completion for shell '\(other)'; choose bash or zsh")
        }
        return .success
    }

    /// How the value of an option is completed.
    enum ValueKind {
        case file, folder, profile, none
    }

    static func valueKind(_ option: OptionSpec) -> ValueKind {
        switch (option.name, option.valueName) {
        case ("--profile", _): return .profile
        case (_, "F"?), (_, "FILE"?): return .file
        case (_, "DIR"?): return .folder
        default: return .none
        }
    }

    /// First words: commands and command groups.
    static var firstWords: [String] {
        var seen: [String] = []
        for spec in CommandCatalog.all where !seen.contains(spec.path[0]) {
            seen.append(spec.path[0])
        }
        return seen
    }

    /// Groups such as `ca`, with their subcommands.
    static var groups: [(String, [CommandSpec])] {
        firstWords.compactMap { word in
            let members = CommandCatalog.all.filter { $0.path.count > 1 && $0.path[0] == word }
            return members.isEmpty ? nil : (word, members)
        }
    }

    static func optionWords(_ spec: CommandSpec) -> [String] {
        spec.options.flatMap { [$0.name] + ($0.short.map { [$0] } ?? []) } + ["--help"]
    }

    static func valuedOptions(_ kind: ValueKind) -> [String] {
        var names: [String] = []
        for option in CommandCatalog.all.flatMap(\.options)
        where !option.isFlag && valueKind(option) == kind && !names.contains(option.name) {
            names.append(option.name)
            if let short = option.short { names.append(short) }
        }
        return names
    }

    /// The bash script: `complete -F _sfts sfts`.
    static func bash() -> String {
        var lines = [
            "# bash completion for sfts \(SFTSVersion.current). Load it with: source <(sfts completion bash)",
            "_sfts_profiles() {",
            "    local home=\"${SFTS_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/sfts}\" folder",
            "    for folder in \"$home\"/profiles/*/; do",
            "        [[ -d \"$folder\" ]] && basename \"$folder\"",
            "    done",
            "}",
            "",
            "_sfts() {",
            "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"",
            "    local command=\"${COMP_WORDS[1]}\"",
            "    COMPREPLY=()",
            "    if (( COMP_CWORD == 1 )); then",
            "        COMPREPLY=($(compgen -W \"\((firstWords + ["--help", "--version"]).joined(separator: " "))\" -- \"$cur\"))",
            "        return",
            "    fi",
            "    case \"$command\" in",
        ]
        for (group, members) in groups {
            lines += [
                "        \(group))",
                "            if (( COMP_CWORD == 2 )); then",
                "                COMPREPLY=($(compgen -W \"\(members.map { $0.path[1] }.joined(separator: " "))\" -- \"$cur\"))",
                "                return",
                "            fi",
                "            command=\"$command ${COMP_WORDS[2]}\" ;;",
            ]
        }
        lines += ["    esac", "    case \"$prev\" in"]
        let valued: [(ValueKind, String)] = [
            (.file, "COMPREPLY=($(compgen -f -- \"$cur\")); return ;;"),
            (.folder, "COMPREPLY=($(compgen -d -- \"$cur\")); return ;;"),
            (.profile, "COMPREPLY=($(compgen -W \"$(_sfts_profiles)\" -- \"$cur\")); return ;;"),
            (.none, "return ;;"),
        ]
        for (kind, action) in valued {
            let names = valuedOptions(kind)
            if !names.isEmpty {
                lines.append("        \(names.joined(separator: "|"))) \(action)")
            }
        }
        lines += ["    esac", "    local options=\"--help\"", "    case \"$command\" in"]
        for spec in CommandCatalog.all {
            lines.append("        \"\(spec.name)\") options=\"\(optionWords(spec).joined(separator: " "))\" ;;")
        }
        lines += [
            "    esac",
            "    if [[ \"$cur\" == -* ]]; then",
            "        COMPREPLY=($(compgen -W \"$options\" -- \"$cur\"))",
            "        return",
            "    fi",
            "    case \"$command\" in",
            "        help) COMPREPLY=($(compgen -W \"\(firstWords.joined(separator: " "))\" -- \"$cur\")) ;;",
            "        completion) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")) ;;",
            "        *) COMPREPLY=($(compgen -f -- \"$cur\")) ;;",
            "    esac",
            "}",
            "complete -o filenames -o bashdefault -F _sfts sfts",
        ]
        return lines.joined(separator: "\n")
    }

    /// The zsh script, usable from `$fpath` as `_sfts` or by `source`.
    static func zsh() -> String {
        var lines = [
            "#compdef sfts",
            "# zsh completion for sfts \(SFTSVersion.current). Save it as _sfts in a folder on $fpath,",
            "# or, after autoload -U compinit && compinit, load it with: source <(sfts completion zsh)",
            "_sfts_profiles() {",
            "    local home=${SFTS_HOME:-${XDG_CONFIG_HOME:-$HOME/.config}/sfts}",
            "    local -a names",
            "    names=(${home}/profiles/*(N/:t))",
            "    compadd -a names",
            "}",
            "",
            "_sfts() {",
            "    if (( CURRENT == 2 )); then",
            "        local -a commands",
            "        commands=(",
        ]
        for word in firstWords {
            let summary =
                CommandCatalog.all.first { $0.path == [word] }?.summary
                ?? "\(word) commands: "
                + CommandCatalog.all.filter { $0.path[0] == word }.map { $0.path[1] }.joined(separator: ", ")
            lines.append("            \(quote("\(word):\(summary)"))")
        }
        lines += [
            "        )",
            "        _describe -t commands 'sfts command' commands",
            "        return",
            "    fi",
            "    local command=$words[2] skip=1",
            "    case $command in",
        ]
        for (group, members) in groups {
            lines += [
                "        (\(group))",
                "            if (( CURRENT == 3 )); then",
                "                local -a subcommands",
                "                subcommands=(",
            ]
            for member in members {
                lines.append("                    \(quote("\(member.path[1]):\(member.summary)"))")
            }
            lines += [
                "                )",
                "                _describe -t subcommands 'sfts \(group) subcommand' subcommands",
                "                return",
                "            fi",
                "            command=\"$command $words[3]\"",
                "            skip=2 ;;",
            ]
        }
        lines += [
            "    esac",
            "    shift $skip words",
            "    (( CURRENT -= skip ))",
            "    case $command in",
        ]
        for spec in CommandCatalog.all {
            var arguments: [String] = []
            for option in spec.options {
                let names = [option.name] + (option.short.map { [$0] } ?? [])
                let exclusion = names.count > 1 ? "(\(names.joined(separator: " ")))" : ""
                var value = ""
                if let valueName = option.valueName {
                    switch valueKind(option) {
                    case .file: value = ":\(valueName):_files"
                    case .folder: value = ":\(valueName):_files -/"
                    case .profile: value = ":\(valueName):_sfts_profiles"
                    case .none: value = ":\(valueName): "
                    }
                }
                let repeatable = option.repeatable ? "*" : ""
                for name in names {
                    arguments.append(quote("\(repeatable)\(exclusion)\(name)[\(bracketed(option.help))]\(value)"))
                }
            }
            arguments.append(quote("(- *)--help[show help]"))
            switch spec.name {
            case "help":
                arguments.append(quote("1:command:(\(firstWords.joined(separator: " ")))"))
            case "completion":
                arguments.append(quote("1:shell:(bash zsh)"))
            default:
                if !spec.positionals.isEmpty {
                    arguments.append(quote("*:argument:_files"))
                }
            }
            lines.append("        (\(spec.name.replacingOccurrences(of: " ", with: "\\ ")))")
            lines.append("            _arguments -s : \\")
            for (index, argument) in arguments.enumerated() {
                lines.append("                \(argument)\(index == arguments.count - 1 ? " ;;" : " \\")")
            }
        }
        lines += [
            "    esac",
            "}",
            "",
            "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then",
            "    _sfts \"$@\"",
            "elif (( $+functions[compdef] )); then",
            "    compdef _sfts sfts",
            "else",
            "    print -u2 \"sfts completion: run 'autoload -U compinit && compinit' before loading this script\"",
            "fi",
        ]
        return lines.joined(separator: "\n")
    }

    /// Single-quotes a word for zsh.
    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Escapes the brackets of an `_arguments` option description.
    static func bracketed(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "[", with: "\\[")
            .replacingOccurrences(of: "]", with: "\\]")
    }
}
