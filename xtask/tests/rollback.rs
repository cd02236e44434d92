//! `cargo xtask rollback` against the local stack: deploy A, deploy B, go back; revisions and
//! ECR tags read back with the AWS CLI.

mod support;
mod world;

use world::{World, comparable, image_of, sha, tag_of};

/// A world with images A and B pushed to dev (B pushed last, so `latest` is on B) and both
/// deployed (revision 2 runs A, revision 3 runs B). Returns A's and B's SHA and digest.
fn deployed_a_then_b(world: &World) -> ((String, String), (String, String)) {
    world.up("dev");
    let (a, b) = (sha('a'), sha('b'));
    let (da, db) = {
        let _heavy = support::docker_lock();
        (world.push(&a, "dev"), world.push(&b, "dev"))
    };
    world.run(&["deploy", "--env", "dev", "--tag", &a]).assert_success();
    world.run(&["deploy", "--env", "dev", "--tag", &b]).assert_success();
    assert_eq!(world.revisions("dev").len(), 3);
    assert_eq!(world.digest_of("dev", "latest"), Some(db.clone()));
    world.take_github_output();
    ((a, da), (b, db))
}

#[test]
fn rollback_goes_back_to_the_revision_before_the_last_deploy() {
    let world = World::new("rbdefault");
    let ((a, da), (b, db)) = deployed_a_then_b(&world);
    let rev2 = world.revision("dev", 2);

    // Dry run: the diff, nothing registered, latest not moved.
    let dry = world.run(&["rollback", "--env", "dev", "--dry-run"]);
    dry.assert_success();
    let out = dry.stdout();
    assert!(out.contains("revision  3 → 4") && out.contains("revision 2's properties"), "{out}");
    assert!(out.contains("dry run: nothing registered"), "{out}");
    assert_eq!(world.revisions("dev").len(), 3);
    assert_eq!(world.digest_of("dev", "latest"), Some(db.clone()));

    let run = world.run(&["rollback", "--env", "dev"]);
    run.assert_success();
    let rev4 = world.revision("dev", 4);
    assert_eq!(image_of(&rev4), world.image_uri("dev", &a));
    assert_eq!(comparable(&rev4), comparable(&rev2), "revision 2's properties, re-registered");
    assert_eq!(tag_of(&rev4, "splitter:source-revision"), Some("2"));
    assert_eq!(tag_of(&rev4, "splitter:previous-revision"), Some("3"));
    assert_eq!(tag_of(&rev4, "splitter:image-tag"), Some(a.as_str()));
    assert_eq!(world.digest_of("dev", "latest"), Some(da.clone()), "latest back on A");
    assert!(run.stdout().contains("latest moved back"), "{}", run.stdout());
    let gha = world.take_github_output();
    assert!(gha.contains("job-definition-revision=4\n"), "{gha}");

    // A rollback is recorded like a deploy: rolling back again undoes it.
    world.run(&["rollback", "--env", "dev"]).assert_success();
    let rev5 = world.revision("dev", 5);
    assert_eq!(image_of(&rev5), world.image_uri("dev", &b));
    assert_eq!(tag_of(&rev5, "splitter:source-revision"), Some("3"));
    assert_eq!(world.digest_of("dev", "latest"), Some(db), "latest on B again");
}

#[test]
fn explicit_targets_and_refusals() {
    let world = World::new("rbtarget");
    // Revision 1 (from `local up`) was not registered by deploy: no record to go back to.
    world.up("dev");
    let line = world.run(&["rollback", "--env", "dev"]).assert_one_line_error();
    assert!(
        line.contains("--to-revision") && line.contains("splitter:previous-revision"),
        "{line}"
    );
    let ((a, da), (b, _)) = {
        // (local up again is a no-op)
        deployed_a_then_b(&world)
    };

    // --to-revision works for an INACTIVE revision too.
    world
        .aws_run(&[
            "batch",
            "deregister-job-definition",
            "--job-definition",
            &format!("{}:2", world.job_definition("dev")),
        ])
        .assert_success();
    assert_eq!(world.revision("dev", 2)["status"], "INACTIVE");
    let run = world.run(&["rollback", "--env", "dev", "--to-revision", "2"]);
    run.assert_success();
    assert!(run.stdout().contains("(INACTIVE)"), "{}", run.stdout());
    let rev4 = world.revision("dev", 4);
    assert_eq!(image_of(&rev4), world.image_uri("dev", &a));
    assert_eq!(comparable(&rev4), comparable(&world.revision("dev", 2)));
    assert_eq!(world.digest_of("dev", "latest"), Some(da));

    // --to-tag: the current properties with that image.
    world.run(&["rollback", "--env", "dev", "--to-tag", &b]).assert_success();
    let rev5 = world.revision("dev", 5);
    assert_eq!(image_of(&rev5), world.image_uri("dev", &b));
    assert_eq!(comparable(&rev5), comparable(&rev4));
    assert_eq!(tag_of(&rev5, "splitter:previous-revision"), Some("4"));

    // Already there: nothing registered.
    let same = world.run(&["rollback", "--env", "dev", "--to-tag", &b]);
    same.assert_success();
    assert!(same.stdout().contains("nothing to register"), "{}", same.stdout());
    assert_eq!(world.revisions("dev").len(), 5);

    // Refusals: an unknown revision, an image no longer in ECR, prod without --yes.
    let line =
        world.run(&["rollback", "--env", "dev", "--to-revision", "99"]).assert_one_line_error();
    assert!(line.contains("revision 99") && line.contains("1..5"), "{line}");
    let line =
        world.run(&["rollback", "--env", "dev", "--to-revision", "1"]).assert_one_line_error();
    assert!(line.contains("placeholder") && line.contains("not in ECR"), "{line}");
    let line =
        world.run(&["rollback", "--env", "dev", "--to-tag", &sha('9')]).assert_one_line_error();
    assert!(line.contains("not in ECR"), "{line}");
    assert_eq!(world.revisions("dev").len(), 5, "no refusal registered anything");

    world.up("prod");
    {
        let _heavy = support::docker_lock();
        world.push(&a, "prod");
    }
    world.run(&["deploy", "--env", "prod", "--tag", &a, "--yes"]).assert_success();
    let prod = world.run(&["rollback", "--env", "prod", "--to-revision", "1"]);
    // Revision 1 runs the placeholder image, which is not in ECR: refused before the prod rule.
    assert!(prod.assert_one_line_error().contains("not in ECR"));
    let line = world
        .run(&["rollback", "--env", "prod", "--to-tag", &a, "--force"])
        .assert_one_line_error();
    assert!(line.contains("--yes"), "{line}");
    assert_eq!(world.revisions("prod").len(), 2);
    world.run(&["rollback", "--env", "prod", "--to-tag", &a, "--force", "--yes"]).assert_success();
    assert_eq!(world.revisions("prod").len(), 3);
    assert!(world.digest_of("prod", "latest").is_none(), "prod has no latest");
}
