// mimalloc: the server allocates many small strings per request; glibc's allocator spent
// a fifth of the CPU of a batch create in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    magpie::cli::main()
}
