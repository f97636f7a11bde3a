use super::*;
use chrono::{TimeZone, Utc};

#[test]
fn attr_patch_sends_only_set_fields_in_qumulo_forms() {
    let t = Utc.timestamp_opt(1_425_520_918, 498_584_694).unwrap();
    let all = AttrPatch {
        mode: Some(0o755),
        group: Some(513),
        size: Some(5),
        modification_time: Some(t),
    };
    assert_eq!(
        patch_body(&all),
        json!({"mode": "0755", "group": "513", "size": "5", "modification_time": "2015-03-05T02:01:58.498584694Z"})
    );
    let whole_second = AttrPatch {
        modification_time: Some(Utc.timestamp_opt(0, 0).unwrap()),
        ..Default::default()
    };
    assert_eq!(
        patch_body(&whole_second),
        json!({"modification_time": "1970-01-01T00:00:00.000000000Z"})
    );
    let mode = AttrPatch {
        mode: Some(0o4700),
        ..Default::default()
    };
    assert_eq!(patch_body(&mode), json!({"mode": "4700"}));
    assert_eq!(patch_body(&AttrPatch::default()), json!({}));
}
