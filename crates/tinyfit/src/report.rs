//! Console formatting shared by the commands.

use tinyfit_train::Metrics;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line of accuracy, macro-F1 and loss for a named split.
pub fn print_metrics(split: &str, m: &Metrics) {
    println!(
        "{split} accuracy {:.2}% ({} samples), macro-F1 {:.4}, loss {:.4}",
        100.0 * m.accuracy,
        thousands(m.samples as u64),
        m.macro_f1,
        m.loss
    );
}

/// The confusion matrix with class names (rows: true class, columns: predicted).
pub fn print_confusion(classes: &[String], confusion: &[Vec<usize>]) {
    let width = classes.iter().map(|c| c.len()).max().unwrap_or(4).min(20);
    println!("confusion (rows true, columns predicted):");
    for (name, row) in classes.iter().zip(confusion) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
        println!("  {name:<width$} {}", cells.join(""));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(117_031), "117,031");
        assert_eq!(super::thousands(9_021_504), "9,021,504");
    }
}
