import Foundation

/// Every subcommand's grammar: the single source of help text and of the man page check.
public enum CommandCatalog {
    static let root = OptionSpec(
        "--root", value: "DIR", help: "server state root (default: the current folder)")
    static let passphraseFile = OptionSpec(
        "--passphrase-file", value: "F",
        help: "read the PKI passphrase from F (else SFTS_PKI_PASSPHRASE, else a prompt)")
    static let profile = OptionSpec(
        "--profile", value: "NAME", help: "client profile to use (default: default)")
    static let passwordFile = OptionSpec(
        "--password-file", value: "F",
        help: "read your password from F (else SFTS_PASSWORD, else a prompt)")
    static let json = OptionSpec(
        "--json", help: "print each result as one JSON object per line on standard output, errors too")
    static let quiet = OptionSpec(
        "--quiet", short: "-q", help: "no progress bar and no warnings on standard error")
    static let recursive = OptionSpec(
        "--recursive", short: "-r", help: "transfer a folder and everything in it, keeping relative paths")
    static let keyBits = OptionSpec(
        "--key-bits", value: "N", help: "RSA size in bits for new keys (default: 3072)")
    static let listen = OptionSpec(
        "--listen", value: "ADDR",
        help: "numeric address to listen on (default: ::, all IPv6 and IPv4 addresses)")
    static let csrPort = OptionSpec(
        "--csr-port", value: "N", help: "enrollment service port (default: 8444)")
    static let certLifetime = OptionSpec(
        "--cert-lifetime", value: "DURATION",
        help: "lifetime of issued client certificates, such as 90d, 12h or 600s (default: 90d)")
    static let limitOptions = [
        OptionSpec(
            "--handshake-timeout", value: "S",
            help: "seconds a client has to finish the TLS handshake (default: 10)"),
        OptionSpec(
            "--idle-timeout", value: "S",
            help: "seconds a connection may stay silent, the time for one frame, and the time for each "
                + "64 KiB of a file body (default: 60)"),
        OptionSpec(
            "--max-connections", value: "N", help: "connections open at once (default: 512)"),
        OptionSpec(
            "--max-connections-per-ip", value: "N",
            help: "connections open at once from one address (default: 64)"),
        OptionSpec(
            "--max-frame-size", value: "BYTES",
            help: "largest request frame a client may send (default: 65536)"),
        OptionSpec(
            "--time-tolerance", value: "S",
            help: "accepted difference between request timestamps and the server clock (default: 30)"),
        OptionSpec(
            "--max-auth-failures", value: "N",
            help: "authentication failures from one address that block it (default: 3)"),
        OptionSpec(
            "--failure-window", value: "S",
            help: "seconds over which authentication failures count (default: 86400)"),
        OptionSpec(
            "--block-duration", value: "S", help: "seconds an address stays blocked (default: 86400)"),
    ]

    public static let caInit = CommandSpec(
        ["ca", "init"],
        summary: "Create the CA, the server certificate, the host code and the default policy files.",
        options: [
            root,
            hostOption, keyBits, passphraseFile,
            OptionSpec("--force", help: "replace an existing CA, invalidating every certificate it issued"),
        ],
        details: "Prints the host code, which users need to enroll, and the CA certificate's "
            + "SHA-256 fingerprint. Private keys are encrypted with the PKI passphrase, which must have "
            + "at least 15 characters.")

    public static let caRevoke = CommandSpec(
        ["ca", "revoke"],
        summary: "Revoke a user's current certificate, or one by serial, and write a new CRL.",
        positionals: [PositionalSpec("TARGET", help: "a user name or a certificate serial number in hexadecimal")],
        options: [
            root, passphraseFile,
            OptionSpec(
                "--reason", value: "REASON",
                help: "unspecified (default), keyCompromise, affiliationChanged, superseded, "
                    + "cessationOfOperation or privilegeWithdrawn"),
        ],
        details: "The CRL is certificates/crl.pem, signed by the CA; a running server rejects the "
            + "certificate from its next handshake.")

    static let hostOption = OptionSpec(
        "--host", value: "NAME", repeatable: true,
        help: "DNS name or IP address for the server certificate; repeat for more "
            + "(default: localhost, 127.0.0.1, ::1 and the host name)")

    public static let caImport = CommandSpec(
        ["ca", "import"],
        summary: "Set up a state root around a CA and server certificate made elsewhere, such as with openssl.",
        options: [
            root, passphraseFile,
            OptionSpec("--ca-certificate", value: "F", help: "the CA certificate, PEM (required)"),
            OptionSpec(
                "--ca-key", value: "F",
                help: "the CA's RSA key, PEM, unencrypted or encrypted with the PKI passphrase (required)"),
            OptionSpec("--server-certificate", value: "F", help: "the server certificate, PEM (required)"),
            OptionSpec(
                "--server-key", value: "F",
                help: "the server's RSA key, PEM, unencrypted or encrypted with the PKI passphrase (required)"),
            OptionSpec("--force", help: "replace an existing CA in the state root"),
        ],
        details: "The server certificate must chain to the CA and allow TLS server use. The keys are "
            + "stored encrypted with the PKI passphrase, and a host code, token key and CRL are created "
            + "as by ca init.")

    public static let caServerCertificate = CommandSpec(
        ["ca", "server-cert"],
        summary: "Issue a new server key and certificate; a running server switches to them on SIGHUP.",
        options: [root, passphraseFile, hostOption, keyBits],
        details: "Without --host the new certificate names the hosts the current one names.")

    public static let caSign = CommandSpec(
        ["ca", "sign"],
        summary: "Sign a client CSR made elsewhere under the CA policy and print the certificate.",
        positionals: [PositionalSpec("CSR", help: "the PEM certificate signing request")],
        options: [
            root, passphraseFile, certLifetime,
            OptionSpec("--out", value: "F", help: "write the certificate to F instead of standard output"),
        ],
        details: "The CSR's common name must be a valid user name. When that user is enrolled, the "
            + "certificate becomes the user's current one, so its key logs in with the user's password.")

    public static let caTokens = CommandSpec(
        ["ca", "tokens"],
        summary: "List enrollment tokens with id, user, issue and expiry time, and status.",
        options: [root],
        details: "Tokens that expired more than a week ago are forgotten when the next one is issued.")

    public static let caTokenCancel = CommandSpec(
        ["ca", "token-cancel"],
        summary: "Cancel an unused enrollment token by id, or every unused token of a user name.",
        positionals: [PositionalSpec("TARGET", help: "a token id from 'sfts ca tokens', or a user name")],
        options: [root],
        details: "A cancelled token no longer enrolls; the running server sees it at the next enrollment.")

    public static let caToken = CommandSpec(
        ["ca", "token"],
        summary: "Print a one-time enrollment token for one user name, alone on standard output.",
        positionals: [PositionalSpec("NAME", help: "the user name the token is for")],
        options: [
            root,
            OptionSpec(
                "--ttl", value: "DURATION", help: "how long the token stays valid, such as 24h or 30m (default: 24h)"),
        ],
        details: "The token replaces the host code for one enrollment of NAME, also of a name already "
            + "enrolled, and carries the CA fingerprint, which enroll checks. Give it to the user over "
            + "a channel you trust.")

    public static let caList = CommandSpec(
        ["ca", "list"], summary: "List issued certificates with serial, name, use, validity and status.",
        options: [root])

    public static let serve = CommandSpec(
        ["serve"],
        summary: "Run the file service and the enrollment service until SIGTERM or SIGINT.",
        options: [
            root, listen,
            OptionSpec("--port", value: "N", help: "file service port (default: 8443)"),
            csrPort,
            OptionSpec("--no-csr", help: "run the file service only, without enrollment"),
            passphraseFile, certLifetime,
            OptionSpec(
                "--max-file-size", value: "BYTES",
                help: "largest file a client may upload (default: 68719476736, 64 GiB)"),
        ] + limitOptions)

    public static let csrServe = CommandSpec(
        ["csr-serve"],
        summary: "Run the enrollment service alone until SIGTERM or SIGINT.",
        options: [root, listen, csrPort, passphraseFile, certLifetime] + limitOptions)

    public static let enroll = CommandSpec(
        ["enroll"],
        summary: "Create your key, prove the host code, register your password and store the "
            + "issued certificate in a client profile.",
        options: [
            OptionSpec("--server", value: "HOST", help: "server host name or address (required)"),
            OptionSpec(
                "--user", value: "NAME", help: "user name to enroll as (required unless a token names it)"),
            OptionSpec("--port", value: "N", help: "file service port to store in the profile (default: 8443)"),
            csrPort, profile, passwordFile,
            OptionSpec(
                "--code-file", value: "F",
                help: "read the host code from F (else SFTS_HOST_CODE, else a prompt)"),
            OptionSpec(
                "--token-file", value: "F",
                help: "read a one-time token from F (else SFTS_ENROLL_TOKEN) and use it in place of the host code"),
            keyBits,
            OptionSpec(
                "--ca-fingerprint", value: "SHA256",
                help: "refuse a server whose CA has another SHA-256 fingerprint (as 'sfts ca init' prints it)"),
            OptionSpec("--force", help: "replace an existing profile of the same name"),
        ],
        details: "The password must have at least 15 characters. It encrypts the client key "
            + "and logs you in; it is never stored in clear.")

    public static let put = CommandSpec(
        ["put"], summary: "Upload a file, or a folder with -r.",
        positionals: [
            PositionalSpec("LOCAL", help: "the local file, or folder with -r"),
            PositionalSpec(
                "REMOTE", required: false,
                help: "remote name, or with -r the remote folder to fill (default: LOCAL's name)"),
        ],
        options: [
            profile, passwordFile, recursive,
            OptionSpec("--force", help: "replace existing remote files (needs the delete permission)"),
            quiet, json,
        ],
        details: "With -r, every regular file under LOCAL is uploaded to the same relative path under "
            + "REMOTE; symbolic links and empty folders are skipped with a warning. All names are checked, "
            + "and without --force the remote folder is checked for files in the way, before anything is "
            + "sent. Each file is stored whole or not at all; a failure stops the upload and says how many "
            + "files were stored before it.")

    public static let get = CommandSpec(
        ["get"], summary: "Download a file, or a folder with -r.",
        positionals: [
            PositionalSpec("REMOTE", help: "the remote file, or folder with -r"),
            PositionalSpec(
                "LOCAL", required: false,
                help: "local file or folder (default: the remote name in the current folder); with -r the "
                    + "local folder to fill, created when missing"),
        ],
        options: [
            profile, passwordFile, recursive, OptionSpec("--force", help: "replace existing local files"), quiet,
            json,
        ],
        details: "With -r, the remote folder is listed first and every file in it is saved under LOCAL at "
            + "the same relative path; without --force, nothing is fetched when any of those files exists. "
            + "Each file is saved whole and verified or not at all.")

    public static let ls = CommandSpec(
        ["ls"], summary: "List a remote folder.",
        positionals: [PositionalSpec("PATH", required: false, help: "remote folder (default: the top)")],
        options: [
            OptionSpec("--long", short: "-l", help: "show size, modification time, uploader and SHA-256"),
            profile, passwordFile, json,
        ])

    public static let rm = CommandSpec(
        ["rm"], summary: "Remove a remote file or empty folder.",
        positionals: [PositionalSpec("REMOTE", help: "the remote file or empty folder")],
        options: [profile, passwordFile, json])

    public static let shell = CommandSpec(
        ["shell"],
        summary: "Run many commands over one connection and one login, interactively or from a batch.",
        options: [
            profile, passwordFile,
            OptionSpec(
                "--batch", short: "-b", value: "FILE",
                help: "read commands from FILE (- for standard input) and stop at the first failure"),
            quiet, json,
        ],
        details: "On a terminal, shell prompts for commands until exit or Ctrl-D; type help for the commands "
            + "your role allows. With --batch, or when standard input is not a terminal, it reads one "
            + "command per line, echoes each to standard error, and stops at the first one that fails, "
            + "exiting with that command's code; a line starting with - may fail without stopping the batch.")

    public static let completion = CommandSpec(
        ["completion"], summary: "Print a shell completion script for bash or zsh.",
        positionals: [PositionalSpec("SHELL", help: "bash or zsh")], options: [],
        details: "Load it with: source <(sfts completion bash), or for zsh save it as _sfts in a folder "
            + "on $fpath.")

    public static let passwd = CommandSpec(
        ["passwd"], summary: "Change your password.",
        options: [
            profile, passwordFile,
            OptionSpec(
                "--new-password-file", value: "F",
                help: "read the new password from F (else SFTS_NEW_PASSWORD, else a prompt)"),
        ])

    public static let renew = CommandSpec(
        ["renew"],
        summary: "Renew your client certificate with a new key before it expires.",
        options: [profile, passwordFile],
        details: "put, get, ls and rm renew on their own once less than a third of the certificate's "
            + "lifetime is left. An expired certificate cannot be renewed; enroll again with a token.")

    public static let login = CommandSpec(
        ["login"],
        summary: "Open a login session, so this profile's commands need no password until it ends.",
        options: [
            profile, passwordFile,
            OptionSpec(
                "--ttl", value: "DURATION", help: "how long the session lasts, from 1m to 12h (default: 15m)"),
        ],
        details: "While the session lasts, the client key is stored unencrypted (mode 0600) in the profile "
            + "with the session ticket, so anyone who can read the profile can act as you until it ends. "
            + "The ticket works only with this profile's certificate and ends when the password changes.")

    public static let logout = CommandSpec(
        ["logout"], summary: "End the profile's login session and delete its ticket and key.",
        options: [profile])

    public static let userList = CommandSpec(
        ["user", "list"], summary: "List enrolled users with role and certificate expiry.",
        options: [root])

    public static let userRole = CommandSpec(
        ["user", "role"], summary: "Change a user's role.",
        positionals: [
            PositionalSpec("NAME", help: "the user"),
            PositionalSpec("ROLE", help: "a role defined in roles.json"),
        ],
        options: [root])

    public static let userRemove = CommandSpec(
        ["user", "remove"], summary: "Remove a user; their certificate stops working at once.",
        positionals: [PositionalSpec("NAME", help: "the user")],
        options: [root])

    public static let blockList = CommandSpec(
        ["block", "list"],
        summary: "List addresses blocked after repeated authentication failures, with the block's end.",
        options: [root])

    public static let blockLift = CommandSpec(
        ["block", "lift"], summary: "Lift the block on an address and forget its failures.",
        positionals: [
            PositionalSpec(
                "ADDRESS", help: "an IPv4 address, an IPv6 address (its /64 is lifted) or a key from block list")
        ],
        options: [root])

    public static let help = CommandSpec(
        ["help"], summary: "Show help for sfts or for one command.",
        positionals: [PositionalSpec("COMMAND", required: false, help: "a command, such as put or 'ca init'")],
        options: [])

    public static let demo = CommandSpec(
        ["demo"],
        summary: "Run the whole job on loopback in a temporary folder: CA, server, enrollment, "
            + "put, ls, get, verify and rm, printing each step.",
        options: [
            OptionSpec("--key-bits", value: "N", help: "RSA size for the demo's keys (default: 3072)"),
            OptionSpec("--keep", help: "keep the temporary folder and print its path"),
        ])

    /// Every command, in the order help lists them.
    public static let all: [CommandSpec] = [
        caInit, caImport, caServerCertificate, caSign, caToken, caTokens, caTokenCancel, caRevoke, caList, serve,
        csrServe, enroll, put, get, ls,
        rm, shell, passwd, renew, login, logout, userList, userRole, userRemove,
        blockList, blockLift, help, completion, demo,
    ]

    /// Finds the command the leading tokens name; returns it and the number of tokens used.
    static func match(_ tokens: [String]) -> (CommandSpec, Int)? {
        let candidates = all.sorted { $0.path.count > $1.path.count }
        for spec in candidates where tokens.count >= spec.path.count {
            if Array(tokens.prefix(spec.path.count)) == spec.path {
                return (spec, spec.path.count)
            }
        }
        return nil
    }

    /// The overview `sfts help` prints.
    public static var overview: String {
        var lines = [
            "sfts \(SFTSVersion.current): secure file transfer over mutual TLS with a built-in CA.",
            "",
            "Usage: sfts COMMAND [options] [arguments]",
            "",
            "Commands:",
        ]
        let width = (all.map(\.name.count).max() ?? 12) + 2
        for spec in all {
            let label = spec.name.padding(toLength: width, withPad: " ", startingAt: 0)
            lines.append("  \(label)\(spec.summary)")
        }
        lines += [
            "",
            "Run 'sfts COMMAND --help' for a command's options, and 'man sfts' for the full manual.",
        ]
        return lines.joined(separator: "\n")
    }
}

/// The version `sfts --version` prints.
public enum SFTSVersion {
    public static let current = "0.1.0"
}
