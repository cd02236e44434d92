//! `cargo xtask deploy` against the local stack: job definition revisions registered through the
//! SDK and read back with the AWS CLI; images pushed for real with `cargo xtask push`.

mod support;
mod world;

use serde_json::{Value, json};

use world::{World, comparable, image_of, sha, tag_of};

/// A job definition with every field the EC2 platform accepts, as a team's Terraform might
/// register it.
fn rich_job_definition(world: &World) -> Value {
    let name = world.job_definition("dev");
    json!({
        "jobDefinitionName": name,
        "type": "container",
        "parameters": {"input": "s3://bucket/in.mp4", "output": "s3://bucket/out/", "segment_seconds": "10"},
        "schedulingPriority": 7,
        "containerProperties": {
            "image": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{}:placeholder", world.repository("dev")),
            "command": ["split", "Ref::input", "Ref::output", "--segment-seconds", "Ref::segment_seconds"],
            "jobRoleArn": "arn:aws:iam::123456789012:role/splitter-job",
            "executionRoleArn": "arn:aws:iam::123456789012:role/splitter-exec",
            "volumes": [{"name": "scratch", "host": {"sourcePath": "/mnt/scratch"}}],
            "environment": [
                {"name": "SPLITTER_LOG_FORMAT", "value": "json"},
                {"name": "SPLITTER_WORK_DIR", "value": "/scratch"}
            ],
            "mountPoints": [{"containerPath": "/scratch", "readOnly": false, "sourceVolume": "scratch"}],
            "readonlyRootFilesystem": true,
            "privileged": false,
            "ulimits": [{"hardLimit": 4096, "name": "nofile", "softLimit": 1024}],
            "user": "10001",
            "resourceRequirements": [
                {"value": "2", "type": "VCPU"},
                {"value": "4096", "type": "MEMORY"}
            ],
            "linuxParameters": {
                "initProcessEnabled": true,
                "sharedMemorySize": 64,
                "tmpfs": [{"containerPath": "/tmp", "size": 2048, "mountOptions": ["rw", "nosuid", "nodev"]}],
                "maxSwap": 0,
                "swappiness": 0
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/aws/batch/job", "awslogs-stream-prefix": "splitter"}
            },
            "secrets": [{"name": "API_TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/splitter/token"}],
            "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry"}
        },
        "retryStrategy": {
            "attempts": 3,
            "evaluateOnExit": [
                {"onStatusReason": "Host EC2*", "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"}
            ]
        },
        "propagateTags": true,
        "timeout": {"attemptDurationSeconds": 3600},
        "tags": {"Project": world.project.clone(), "Environment": "dev", "Component": "splitter"},
        "platformCapabilities": ["EC2"]
    })
}

#[test]
fn a_rich_job_definition_survives_the_round_trip_except_its_image() {
    let world = World::new("deprich");
    world.create_repository("dev");
    let input = rich_job_definition(&world);
    world.aws(&["batch", "register-job-definition", "--cli-input-json", &input.to_string()]);

    // What moto stored is what was registered, except two documented moto 5.2.5 quirks:
    // - evaluateOnExit actions read back lower-case (real AWS returns RETRY/EXIT);
    // - schedulingPriority is not stored at all (moto's JobDefinition has no such field), so
    //   its round trip is checked by xtask's unit tests (`jobdef::tests::a_new_image_changes_the_
    //   image_and_nothing_else`, `…::the_register_request_carries_every_property`) instead; if
    //   moto starts storing it, it is compared here too.
    let rev1 = world.revision("dev", 1);
    for (key, want) in input.as_object().expect("object") {
        let got = &rev1[key];
        match key.as_str() {
            "retryStrategy" => {
                let lower = |v: &Value| v.to_string().to_lowercase();
                assert_eq!(lower(got), lower(want), "retryStrategy (case aside)");
                assert_eq!(got["attempts"], want["attempts"]);
            }
            "schedulingPriority" if got.is_null() => {}
            _ => assert_eq!(got, want, "{key} as registered"),
        }
    }

    // No signing key in this hand-made environment (no `local up`): the image is unsigned and
    // deployed with --allow-unsigned, which warns and says so on the revision.
    let tag = sha('1');
    let digest = {
        let _heavy = support::docker_lock();
        world.push_unsigned(&tag, "dev")
    };
    let refused = world.run(&["deploy", "--env", "dev", "--tag", &tag]);
    let line = refused.assert_one_line_error();
    assert!(line.contains("not signed") && line.contains("--allow-unsigned"), "{line}");
    assert_eq!(world.revisions("dev").len(), 1, "nothing registered");
    let deploy = world.run(&["deploy", "--env", "dev", "--tag", &tag, "--allow-unsigned"]);
    deploy.assert_success();
    assert!(deploy.stderr().contains("warning: --allow-unsigned"), "{}", deploy.stderr());
    let out = deploy.stdout();
    assert!(out.contains("revision  1 → 2"), "{out}");
    assert!(out.contains(&digest), "the diff names the image digest: {out}");

    let rev2 = world.revision("dev", 2);
    assert_eq!(image_of(&rev2), world.image_uri("dev", &tag));
    assert_eq!(rev2["status"], "ACTIVE");
    // moto 5.2.5 gives every later revision the first one's platformCapabilities and
    // propagateTags whatever the request says, so for those two (and schedulingPriority, see
    // above) this equality proves nothing: the unit test `jobdef::tests::the_register_request_
    // carries_every_property` checks that the request xtask sends carries them.
    assert_eq!(comparable(&rev2), comparable(&rev1), "everything but the image carried over");
    assert_eq!(tag_of(&rev2, "splitter:previous-revision"), Some("1"));
    assert_eq!(tag_of(&rev2, "splitter:image-tag"), Some(tag.as_str()));
    assert_eq!(
        tag_of(&rev2, "splitter:signature"),
        Some("unverified: deployed with --allow-unsigned")
    );
    let arn = rev2["jobDefinitionArn"].as_str().expect("arn");
    assert!(out.contains(&format!("registered revision 2: {arn}")), "{out}");
    let gha = world.take_github_output();
    assert!(gha.contains(&format!("job-definition-arn={arn}\n")), "{gha}");
    assert!(gha.contains("job-definition-revision=2\n"), "{gha}");

    // Same image again: nothing registered. --force registers anyway.
    let again = world.run(&["deploy", "--env", "dev", "--tag", &tag, "--allow-unsigned"]);
    again.assert_success();
    assert!(again.stdout().contains("nothing to register"), "{}", again.stdout());
    assert_eq!(world.revisions("dev").len(), 2);
    assert!(world.take_github_output().contains(&format!("job-definition-arn={arn}\n")));
    world
        .run(&["deploy", "--env", "dev", "--tag", &tag, "--force", "--allow-unsigned"])
        .assert_success();
    let rev3 = world.revision("dev", 3);
    assert_eq!(comparable(&rev3), comparable(&rev1));
    assert_eq!(tag_of(&rev3, "splitter:previous-revision"), Some("2"));
}

#[test]
fn refusals_change_nothing() {
    let world = World::new("deprefuse");
    world.up("dev");
    let tag = sha('2');
    {
        let _heavy = support::docker_lock();
        world.push(&tag, "dev");
    }
    world.take_github_output();
    let revisions = world.revisions("dev");
    assert_eq!(revisions.len(), 1);

    // A tag that was never pushed.
    let missing = sha('9');
    let line = world.run(&["deploy", "--env", "dev", "--tag", &missing]).assert_one_line_error();
    assert!(line.contains(&missing) && line.contains("cargo xtask push"), "{line}");

    // No job definition (nothing created for staging).
    let line = world.run(&["deploy", "--env", "staging", "--tag", &tag]).assert_one_line_error();
    assert!(
        line.contains("No active job definition found")
            && line.contains(&world.job_definition("staging"))
            && line.contains("Terraform apply"),
        "{line}"
    );

    // A dry run shows the diff and registers nothing.
    let dry = world.run(&["deploy", "--env", "dev", "--dry-run"]);
    dry.assert_success();
    let out = dry.stdout();
    assert!(
        out.contains("revision  1 → 2") && out.contains("dry run: nothing registered"),
        "{out}"
    );
    assert!(
        out.contains(&world.image_uri("dev", &tag)),
        "defaults to the build record's tag: {out}"
    );
    assert_eq!(world.revisions("dev"), revisions, "dry run changed nothing");
    assert!(world.take_github_output().is_empty());

    // prod needs --yes (after the diff).
    world.up("prod");
    {
        let _heavy = support::docker_lock();
        world.run(&["push", "--env", "prod"]).assert_success();
    }
    world.run(&["sign", "--env", "prod", "--no-attestation"]).assert_success();
    let prod = world.run(&["deploy", "--env", "prod", "--tag", &tag]);
    let line = prod.assert_one_line_error();
    assert!(line.contains("--yes"), "{line}");
    assert!(prod.stdout().contains("revision  1 → 2"), "the diff comes first: {}", prod.stdout());
    assert_eq!(world.revisions("prod").len(), 1, "nothing registered without --yes");
    world.run(&["deploy", "--env", "prod", "--tag", &tag, "--yes"]).assert_success();
    assert_eq!(world.revisions("prod").len(), 2);

    // No --tag and no build record.
    std::fs::remove_file(world.dir.join("xtask/image.json")).expect("remove the build record");
    let line = world.run(&["deploy", "--env", "dev"]).assert_one_line_error();
    assert!(line.contains("--tag") && line.contains("cargo xtask image"), "{line}");
}

#[test]
fn racing_deploys_both_register_and_the_newest_revision_wins() {
    let world = World::new("deprace");
    world.up("dev");
    let (a, b) = (sha('a'), sha('b'));
    {
        let _heavy = support::docker_lock();
        world.push(&a, "dev");
        world.push(&b, "dev");
    }
    let mut first = world.xtask(&["deploy", "--env", "dev", "--tag", &a]);
    let mut second = world.xtask(&["deploy", "--env", "dev", "--tag", &b]);
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(|| support::run(&mut first));
        let two = s.spawn(|| support::run(&mut second));
        (one.join().expect("deploy A"), two.join().expect("deploy B"))
    });
    one.assert_success();
    two.assert_success();

    // Both revisions exist, each complete; the newest is the latest ACTIVE one.
    let revisions = world.revisions("dev");
    assert_eq!(revisions.len(), 3, "revision 1 plus one per deploy: {revisions:#?}");
    let rev1 = &revisions[0];
    let images: Vec<&str> = revisions[1..].iter().map(image_of).collect();
    let (ua, ub) = (world.image_uri("dev", &a), world.image_uri("dev", &b));
    assert!(
        images == [ua.as_str(), ub.as_str()] || images == [ub.as_str(), ua.as_str()],
        "{images:?}"
    );
    for def in &revisions[1..] {
        assert_eq!(def["status"], "ACTIVE");
        assert_eq!(comparable(def), comparable(rev1), "nothing lost in either revision");
    }
    // Each deploy says which revision it registered; the one that got 3 is what new jobs run.
    let winner = if one.stdout().contains("registered revision 3") { &ua } else { &ub };
    assert_eq!(image_of(&revisions[2]), winner.as_str());
    let latest = world.aws(&[
        "batch",
        "describe-job-definitions",
        "--job-definition-name",
        &world.job_definition("dev"),
        "--status",
        "ACTIVE",
    ]);
    let newest = latest["jobDefinitions"]
        .as_array()
        .expect("defs")
        .iter()
        .max_by_key(|d| d["revision"].as_i64())
        .expect("one");
    assert_eq!(newest["revision"], 3);
    // The later one recorded what it read: revision 1 (both read it) or 2 (it ran after).
    let previous = tag_of(&revisions[2], "splitter:previous-revision").expect("recorded");
    assert!(previous == "1" || previous == "2", "{previous}");
}
