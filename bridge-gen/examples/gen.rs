fn main() {
    let path = std::env::args().nth(1).expect("fixture path");
    let text = std::fs::read_to_string(path).unwrap();
    let servers: Vec<bridge_gen::ServerTools> = serde_json::from_str(&text).unwrap();
    print!("{}", bridge_gen::generate(&servers));
}
