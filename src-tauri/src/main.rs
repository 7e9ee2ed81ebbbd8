fn main() {
    nimbus_app::run()
}
