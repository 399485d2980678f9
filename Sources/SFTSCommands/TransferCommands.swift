import Foundation
import SFTSClient
import SFTSProtocol

/// How client commands print results: plain lines for people, or with `--json` one JSON
/// object per line on standard output for scripts. Diagnostics always go to standard error.
struct ClientOutput {
    var json = false
    var quiet = false

    init(json: Bool = false, quiet: Bool = false) {
        self.json = json
        self.quiet = quiet
    }

    init(_ arguments: ParsedArguments) {
        json = arguments.flag("--json")
        quiet = arguments.flag("--quiet")
    }

    /// Prints one result: `text` for people, or `fields` as one JSON line.
    func result(_ text: @autoclosure () -> String, _ fields: [String: Any]) {
        Console.out(json ? Self.jsonLine(fields) : text())
    }

    func warning(_ text: String) {
        if !quiet {
            Console.error("sfts: warning: \(text)")
        }
    }

    /// Prints a failure as a JSON line when `--json` is on, so a script reading standard
    /// output sees why the stream ended.
    func failure(_ error: Error) {
        guard json else { return }
        let (code, message) = ExitCode.classify(error)
        Console.out(Self.jsonLine(["event": "error", "exit": Int(code.rawValue), "message": message]))
    }

    /// Formats one JSON object on one line, keys sorted, for tools such as jq. DEL, the C1
    /// controls and the Unicode line and paragraph separators are escaped too, because some line
    /// readers split at them. They occur only inside strings, so the escaped JSON is equal.
    static func jsonLine(_ fields: [String: Any]) -> String {
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return "{}" }
        var line = ""
        for scalar in String(decoding: data, as: UTF8.self).unicodeScalars {
            if (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029 {
                line += String(format: "\\u%04x", scalar.value)
            } else {
                line.unicodeScalars.append(scalar)
            }
        }
        return line
    }
}

/// put, get, ls and rm on a logged-in client, shared by the one-shot commands and the shell.
enum TransferActions {
    static func put(
        _ client: FileClient, local: String, remote: String?, recursive: Bool, force: Bool, output: ClientOutput
    ) throws {
        guard recursive else {
            try putFile(client, local: local, remote: remote, force: force, identity: nil, label: nil, output: output)
            return
        }
        let plan = try FileClient.uploadPlan(localFolder: local, remoteFolder: remote)
        let remoteTop = plan.top
        plan.skipped.forEach(output.warning)
        if !force, client.permissions.contains(Permission.ls.rawValue) {
            let existing = try client.existingFiles(of: plan, under: remoteTop)
            if !existing.isEmpty {
                throw ClientError(
                    .alreadyExists,
                    "\(existing.count) remote file(s) already exist: \(summary(existing.map(Console.displayName))); "
                        + "use --force to replace them; nothing was sent")
            }
        }
        for (index, item) in plan.files.enumerated() {
            do {
                try putFile(
                    client, local: item.local, remote: item.remote, force: force, identity: item.identity,
                    label: "[\(index + 1)/\(plan.files.count)] ", output: output)
            } catch let error as ClientError {
                throw ClientError(
                    error.kind, error.message + "; \(index) of \(plan.files.count) files were stored before it",
                    remoteCode: error.remoteCode)
            }
        }
        if !output.json {
            Console.out(
                "put \(plan.files.count) file(s), \(TerminalProgress.byteCount(plan.totalBytes)), into "
                    + (remoteTop.isEmpty ? "the top folder" : Console.displayName(remoteTop)))
        }
    }

    private static func putFile(
        _ client: FileClient, local: String, remote: String?, force: Bool, identity: FileIdentity?, label: String?,
        output: ClientOutput
    ) throws {
        let progress = TerminalProgress.onStandardError(
            label: (label ?? "") + (remote ?? local), quiet: output.quiet)
        defer { progress?.finish(completed: false) }
        let outcome = try client.put(localPath: local, remote: remote, force: force, identity: identity) {
            done, total in
            progress?.update(done, of: total)
        }
        progress?.finish(completed: true)
        output.result(
            "stored \(Console.displayName(outcome.remoteName)) (\(outcome.size) bytes, sha256 \(outcome.sha256))",
            [
                "event": "put", "local": local, "remote": outcome.remoteName, "size": Int(outcome.size),
                "sha256": outcome.sha256,
            ])
    }

    static func get(
        _ client: FileClient, remote: String, local: String?, recursive: Bool, force: Bool, output: ClientOutput
    ) throws {
        guard recursive else {
            try getFile(
                client, remote: remote, local: local, force: force, folderIdentity: nil, label: nil, output: output)
            return
        }
        var plan = try client.downloadPlan(remote: remote, localFolder: local, force: force)
        try FileClient.createFolders(of: &plan)
        for (index, item) in plan.files.enumerated() {
            do {
                try getFile(
                    client, remote: item.remote, local: item.local, force: force,
                    folderIdentity: item.identity,
                    label: "[\(index + 1)/\(plan.files.count)] ", output: output)
            } catch let error as ClientError {
                throw ClientError(
                    error.kind, error.message + "; \(index) of \(plan.files.count) files were saved before it",
                    remoteCode: error.remoteCode)
            }
        }
        if !output.json {
            Console.out(
                "saved \(plan.files.count) file(s), \(TerminalProgress.byteCount(plan.totalBytes)), in "
                    + Console.displayName(plan.top))
        }
    }

    private static func getFile(
        _ client: FileClient, remote: String, local: String?, force: Bool, folderIdentity: FileIdentity?,
        label: String?, output: ClientOutput
    ) throws {
        let progress = TerminalProgress.onStandardError(label: (label ?? "") + remote, quiet: output.quiet)
        defer { progress?.finish(completed: false) }
        let outcome = try client.get(
            remote: remote, localPath: local, force: force, folderIdentity: folderIdentity
        ) { done, total in
            progress?.update(done, of: total)
        }
        progress?.finish(completed: true)
        var fields: [String: Any] = [
            "event": "get", "remote": remote, "local": outcome.localPath, "size": Int(outcome.size),
            "sha256": outcome.sha256, "signer": outcome.signer,
        ]
        fields["uploader"] = outcome.uploader
        let uploader = outcome.uploader.map { "uploaded by \(DisplayText.escaped($0)); " } ?? ""
        output.result(
            "saved \(Console.displayName(outcome.localPath)) (\(outcome.size) bytes, sha256 "
                + "\(outcome.sha256)); \(uploader)record signed by \(DisplayText.escaped(outcome.signer))", fields)
    }

    static func list(_ client: FileClient, path: String, long: Bool, output: ClientOutput) throws {
        let entries = try client.list(path, long: long || output.json)
        if output.json {
            for entry in entries {
                var fields: [String: Any] = [
                    "event": "entry", "name": entry.name, "kind": entry.kind, "size": Int(entry.size),
                    "modified": entry.modified,
                ]
                fields["uploader"] = entry.uploader
                fields["sha256"] = entry.sha256
                Console.out(ClientOutput.jsonLine(fields))
            }
        } else if long {
            // Every field comes from the server, so each is escaped for the terminal.
            let rows = entries.map { entry -> [String] in
                [
                    DisplayText.escaped(entry.kind), String(entry.size), DisplayText.escaped(entry.modified),
                    DisplayText.escaped(entry.uploader ?? "-"), DisplayText.escaped(entry.sha256 ?? "-"),
                    Console.displayName(entry.name) + (entry.kind == ListEntry.folderKind ? "/" : ""),
                ]
            }
            if !rows.isEmpty {
                Console.out(Table.render(rows))
            }
        } else {
            for entry in entries {
                Console.out(Console.displayName(entry.name) + (entry.kind == ListEntry.folderKind ? "/" : ""))
            }
        }
    }

    static func remove(_ client: FileClient, remote: String, output: ClientOutput) throws {
        try client.remove(remote)
        output.result("removed \(Console.displayName(remote))", ["event": "rm", "remote": remote])
    }

    private static func summary(_ names: [String]) -> String {
        names.prefix(3).joined(separator: ", ") + (names.count > 3 ? ", ..." : "")
    }
}

/// Runs a client command body, printing its failure as JSON too when `--json` is on.
func reportingFailure<T>(_ output: ClientOutput, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        output.failure(error)
        throw error
    }
}

/// `sfts put`.
enum PutCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let output = ClientOutput(arguments)
        return try reportingFailure(output) {
            let client = try ClientCommandSupport.connect(arguments)
            defer { client.close() }
            try TransferActions.put(
                client, local: arguments.positional(0)!, remote: arguments.positional(1),
                recursive: arguments.flag("--recursive"), force: arguments.flag("--force"), output: output)
            ClientCommandSupport.reportTiming(client)
            ClientCommandSupport.renewIfDue(client)
            return .success
        }
    }
}

/// `sfts get`.
enum GetCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let output = ClientOutput(arguments)
        return try reportingFailure(output) {
            let recursive = arguments.flag("--recursive")
            if !recursive {
                // Reject before logging in when the local file is in the way.
                _ = try FileClient.downloadTarget(
                    remote: arguments.positional(0)!, localPath: arguments.positional(1),
                    force: arguments.flag("--force"))
            }
            let client = try ClientCommandSupport.connect(arguments)
            defer { client.close() }
            try TransferActions.get(
                client, remote: arguments.positional(0)!, local: arguments.positional(1), recursive: recursive,
                force: arguments.flag("--force"), output: output)
            ClientCommandSupport.reportTiming(client)
            ClientCommandSupport.renewIfDue(client)
            return .success
        }
    }
}

/// `sfts ls`.
enum ListCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let output = ClientOutput(arguments)
        return try reportingFailure(output) {
            let client = try ClientCommandSupport.connect(arguments)
            defer { client.close() }
            try TransferActions.list(
                client, path: arguments.positional(0) ?? "", long: arguments.flag("--long"), output: output)
            ClientCommandSupport.reportTiming(client)
            ClientCommandSupport.renewIfDue(client)
            return .success
        }
    }
}

/// `sfts rm`.
enum RemoveCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let output = ClientOutput(arguments)
        return try reportingFailure(output) {
            let client = try ClientCommandSupport.connect(arguments)
            defer { client.close() }
            try TransferActions.remove(client, remote: arguments.positional(0)!, output: output)
            ClientCommandSupport.reportTiming(client)
            ClientCommandSupport.renewIfDue(client)
            return .success
        }
    }
}
