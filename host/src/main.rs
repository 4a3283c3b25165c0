fn main() -> std::process::ExitCode {
    magpie::cli::main()
}
