fn main() {
    std::process::exit(evscope::cli::run());
}
