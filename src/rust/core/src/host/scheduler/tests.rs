use super::*;

#[test]
fn a_table_emptied_after_a_burst_gives_its_memory_back() {
    let mut table: HashMap<u64, [u8; 64]> = HashMap::new();
    for id in 0..200_000 {
        table.insert(id, [0; 64]);
    }
    let peak = table.capacity();
    for id in 0..199_900 {
        table.remove(&id);
        shrink_if_sparse(&mut table);
    }
    assert_eq!(table.len(), 100);
    assert!(table.capacity() <= 8192, "{} of {peak}", table.capacity());
    // a small table is left alone (its reported capacity moves a little
    // as removals leave tombstones, but it is not reallocated)
    let mut small: HashMap<u64, u8> = (0..1000).map(|id| (id, 0)).collect();
    for id in 0..999 {
        small.remove(&id);
        shrink_if_sparse(&mut small);
    }
    assert!(small.capacity() > 1000, "{}", small.capacity());
}
