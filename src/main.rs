fn main() -> std::process::ExitCode {
    breakglass::cli::main()
}
