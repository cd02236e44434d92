//! `cargo xtask push` against the local stack: real `docker push` to the stack's registry, the
//! manifest recorded in moto's ECR with `PutImage`, read back with the AWS CLI and the registry's
//! HTTP API. Images are tiny (`docker import` of one file) and named after a per-test project.

mod support;
mod world;

use world::{MOTO_ECR_PASSWORD, World, sha};

/// The registry's own digest of `repo:tag`, and the sha256 of the manifest bytes it serves,
/// computed by Python (not by xtask's code).
fn registry_digest(world: &World, repo: &str, tag: &str) -> (String, String) {
    let url = format!("http://{}/v2/{repo}/manifests/{tag}", world.stack.registry());
    let script = "import sys, hashlib, urllib.request as u\n\
        r = u.urlopen(u.Request(sys.argv[1], headers={'Accept': 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'}))\n\
        b = r.read()\n\
        print(r.headers['Docker-Content-Digest'], 'sha256:' + hashlib.sha256(b).hexdigest())\n";
    let out = support::run(std::process::Command::new("python3").args(["-c", script, &url]));
    out.assert_success();
    let text = out.stdout();
    let mut words = text.split_whitespace();
    (words.next().expect("header").to_owned(), words.next().expect("hash").to_owned())
}

/// `aws ecr put-image-tag-mutability --image-tag-mutability MUTABILITY…` on `repo`.
fn set_tag_mutability(world: &World, repo: &str, mutability: &[&str]) {
    let mut args = vec![
        "ecr",
        "put-image-tag-mutability",
        "--repository-name",
        repo,
        "--image-tag-mutability",
    ];
    args.extend_from_slice(mutability);
    world.aws(&args);
}

#[test]
fn dev_gets_three_tags_on_one_digest_and_a_second_push_uploads_nothing() {
    let world = World::new("push");
    let _heavy = support::docker_lock();
    let repo = world.create_repository("dev");
    let full = sha('a');
    let image_id = world.build(&full, false);

    let first = world.run(&["push", "--env", "dev"]);
    first.assert_success();

    // All three tags on one image, whose digest is the registry's.
    let tags = world.ecr_tags("dev");
    let names: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["aaaaaaa", full.as_str(), "latest"], "{tags:?}");
    let digest = &tags[0].1;
    assert!(tags.iter().all(|(_, d)| d == digest), "one digest for all tags: {tags:?}");
    let (header, hashed) = registry_digest(&world, &repo, &full);
    assert_eq!(&header, digest, "ECR's digest is the registry's Docker-Content-Digest");
    assert_eq!(&hashed, digest, "…which is the sha256 of the manifest bytes");
    // ECR holds the registry's exact manifest, whose config is the local image.
    let got = world.aws(&[
        "ecr",
        "batch-get-image",
        "--repository-name",
        &repo,
        "--image-ids",
        &format!("imageTag={full}"),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(got["images"][0]["imageManifest"].as_str().expect("manifest"))
            .expect("manifest JSON");
    assert_eq!(manifest["config"]["digest"], image_id.as_str());

    // Printed and written for GitHub Actions.
    let uri = world.image_uri("dev", &full);
    let out = first.stdout();
    assert!(out.contains(&format!("image   {uri}")), "{out}");
    assert!(out.contains(&format!("digest  {digest}")), "{out}");
    let gha = world.take_github_output();
    assert_eq!(
        gha,
        format!("image-uri={uri}\nimage-digest={digest}\nimage-tag={full}\n"),
        "GITHUB_OUTPUT"
    );

    // Uploaded once; logged in with the password on stdin only.
    let argv = world.docker_argv();
    let pushes: Vec<&str> = argv.lines().filter(|l| l.starts_with("push ")).collect();
    assert_eq!(pushes, [format!("push {uri}").as_str()], "one push of the full-SHA tag:\n{argv}");
    assert!(
        argv.lines()
            .any(|l| l
                == format!("login --username AWS --password-stdin {}", world.stack.registry())),
        "docker login with --password-stdin:\n{argv}"
    );
    for (what, text) in [("argv", &argv), ("stdout", &out), ("stderr", &first.stderr())] {
        assert!(!text.contains(MOTO_ECR_PASSWORD), "the ECR password is in the {what}:\n{text}");
    }
    // …and it did reach docker (through stdin): the login stored it.
    let config = std::fs::read_to_string(world.dir.join("docker-config/config.json"))
        .expect("docker login wrote its config");
    let stored = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{MOTO_ECR_PASSWORD}"))
    };
    assert!(config.contains(&stored), "docker login got the token on stdin:\n{config}");

    // A second push of the same image: nothing uploaded, nothing changed.
    let before = world.docker_argv().lines().count();
    let second = world.run(&["push", "--env", "dev"]);
    second.assert_success();
    assert!(second.stdout().contains("uploading nothing"), "{}", second.stdout());
    let new_argv: Vec<String> =
        world.docker_argv().lines().skip(before).map(str::to_owned).collect();
    assert!(
        new_argv.iter().all(|l| !l.starts_with("push ") && !l.starts_with("login ")),
        "the second push must not log in or upload: {new_argv:?}"
    );
    assert_eq!(world.ecr_tags("dev"), tags);
    assert!(world.take_github_output().contains(&format!("image-digest={digest}")));
}

#[test]
fn staging_gets_no_latest_and_a_dirty_image_needs_allow_dirty() {
    let world = World::new("pushstg");
    let _heavy = support::docker_lock();
    world.create_repository("staging");
    let full = sha('b');
    world.build(&full, true);

    let refused = world.run(&["push", "--env", "staging"]);
    let line = refused.assert_one_line_error();
    assert!(line.contains("uncommitted changes") && line.contains("--allow-dirty"), "{line}");
    assert!(world.ecr_tags("staging").is_empty(), "nothing pushed");
    assert!(!world.docker_argv().contains("push "), "{}", world.docker_argv());

    world.run(&["push", "--env", "staging", "--allow-dirty"]).assert_success();
    let tags: Vec<String> = world.ecr_tags("staging").into_iter().map(|(t, _)| t).collect();
    assert_eq!(tags, ["bbbbbbb-dirty".to_owned(), format!("{full}-dirty")], "no latest");
}

#[test]
fn immutable_tags_move_latest_only_when_excluded() {
    let world = World::new("pushimm");
    let _heavy = support::docker_lock();
    let repo = world.create_repository("dev");
    set_tag_mutability(
        &world,
        &repo,
        &[
            "IMMUTABLE_WITH_EXCLUSION",
            "--image-tag-mutability-exclusion-filters",
            "filterType=WILDCARD,filter=latest",
        ],
    );
    let a = world.push_unsigned(&sha('a'), "dev");
    let b = world.push_unsigned(&sha('b'), "dev");
    assert_ne!(a, b);
    assert_eq!(world.digest_of("dev", "latest"), Some(b.clone()), "latest moved to B");
    assert_eq!(world.digest_of("dev", &sha('a')), Some(a), "A keeps its SHA tag");

    // Without the exclusion, `latest` cannot move: refused before anything is uploaded.
    set_tag_mutability(&world, &repo, &["IMMUTABLE"]);
    world.build(&sha('c'), false);
    let pushes_before = world.docker_argv().matches("\npush ").count();
    let refused = world.run(&["push", "--env", "dev"]);
    let line = refused.assert_one_line_error();
    assert!(
        line.contains("latest") && line.contains("IMMUTABLE_WITH_EXCLUSION"),
        "says why latest cannot move and how to allow it: {line}"
    );
    assert_eq!(world.docker_argv().matches("\npush ").count(), pushes_before, "no upload");
    assert_eq!(world.digest_of("dev", &sha('c')), None);
    assert_eq!(world.digest_of("dev", "latest"), Some(b));
}

#[test]
fn dry_run_pushes_nothing_and_a_missing_repository_is_one_line() {
    let world = World::new("pushdry");
    world.build(&sha('d'), false);
    let missing = world.run(&["push", "--env", "dev"]);
    let line = missing.assert_one_line_error();
    assert!(
        line.contains(&world.repository("dev")) && line.contains("Terraform"),
        "names the repository and who creates it: {line}"
    );

    world.create_repository("dev");
    let dry = world.run(&["push", "--env", "dev", "--dry-run"]);
    dry.assert_success();
    let out = dry.stdout();
    // The command it would run, with the client it runs (here the test's docker wrapper).
    assert!(
        out.lines().any(|l| l.contains("[dry-run] would run: ") && l.contains("/docker push ")),
        "{out}"
    );
    assert!(out.contains("--password-stdin") && !out.contains(MOTO_ECR_PASSWORD), "{out}");
    assert!(world.ecr_tags("dev").is_empty(), "dry run tagged nothing");
    let argv = world.docker_argv();
    assert!(
        argv.lines().all(|l| !["push ", "login ", "tag "].iter().any(|c| l.starts_with(c))),
        "dry run ran no state-changing docker command:\n{argv}"
    );
}
