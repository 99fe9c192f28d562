/// Count live heap bytes, so the memory budget sees what the image holds.
#[global_allocator]
static ALLOC: evscope::alloc::CountingAlloc = evscope::alloc::CountingAlloc;

fn main() {
    evscope::alloc::CountingAlloc::mark_installed();
    std::process::exit(evscope::cli::run());
}
