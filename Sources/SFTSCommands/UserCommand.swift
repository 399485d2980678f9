import Foundation
import SFTSClient
import SFTSServer

/// `sfts user list`, `sfts user role` and `sfts user remove`, run on the server host against
/// users.json. A running server applies the change from the user's next command.
enum UserCommand {
    static func list(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let users = try JSONUserStore(url: root.users).allUsers()
        guard !users.isEmpty else {
            Console.error("no users enrolled in \(root.users.path)")
            return .success
        }
        let header = ["NAME", "ROLE", "ENROLLED", "CERTIFICATE EXPIRES", "SERIAL"]
        let rows = users.keys.sorted().map { name -> [String] in
            let record = users[name]!
            return [
                name, record.role, record.enrolledAt, record.certificateNotAfter,
                record.certificateSerial,
            ]
        }
        Console.out(Table.render([header] + rows))
        return .success
    }

    static func role(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let name = arguments.positional(0)!
        let role = arguments.positional(1)!
        let policy = try RolePolicy.load(from: root.roles)
        guard policy.permissions[role] != nil else {
            let known = policy.permissions.keys.sorted().joined(separator: ", ")
            throw UsageError("unknown role '\(role)'; roles in \(root.roles.path): \(known)")
        }
        var previous = ""
        try JSONUserStore(url: root.users).modify(name) { record in
            previous = record.role
            record.role = role
        }
        Console.out("\(name): role changed from \(previous) to \(role)")
        return .success
    }

    static func remove(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let name = arguments.positional(0)!
        let record = try JSONUserStore(url: root.users).remove(name)
        Console.out(
            "\(name) removed; certificate \(record.certificateSerial) no longer logs in")
        return .success
    }
}

/// Plain text tables with columns padded to their widest cell.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() {
                widths[index] = max(widths[index], cell.count)
            }
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// `sfts block list` and `sfts block lift`, run on the server host against blocked_ip.json and
/// auth_failures.json. A running server reads both on every connection.
enum BlockCommand {
    static func store(_ root: StateRoot) -> JSONAuthenticationFailureStore {
        JSONAuthenticationFailureStore(failures: root.authFailures, blocks: root.blockedAddresses)
    }

    static func list(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let blocks = try store(root).activeBlocks(at: Date())
        guard !blocks.isEmpty else {
            Console.error("no blocked addresses in \(root.blockedAddresses.path)")
            return .success
        }
        let rows = blocks.keys.sorted().map { key -> [String] in
            let block = blocks[key]!
            return [key, block.since, block.until, String(block.failures), Console.displayName(block.lastReason)]
        }
        Console.out(Table.render([["ADDRESS", "SINCE", "UNTIL", "FAILURES", "LAST REASON"]] + rows))
        return .success
    }

    static func lift(_ arguments: ParsedArguments) throws -> ExitCode {
        let root = try ServerCommandSupport.existingRoot(arguments)
        let address = arguments.positional(0)!
        let key = address.hasSuffix("/64") ? address : AddressGuard.key(for: address)
        guard try store(root).lift(key) else {
            throw ClientError(.notFound, "\(key) is not blocked; 'sfts block list' shows the blocked addresses")
        }
        Console.out("lifted the block on \(key)")
        return .success
    }
}
