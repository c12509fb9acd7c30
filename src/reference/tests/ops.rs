//! Each op on small inputs, against the values PyTorch computes.

use super::*;

#[test]
fn conv_with_padding_stride_groups_and_bias() {
    // x = torch.tensor([float(i % 7 - 3) for i in range(4*5*5)]).reshape(1,4,5,5)
    // w = torch.tensor([((i*3) % 5 - 2) * 0.5 for i in range(4*2*3*3)]).reshape(4,2,3,3)
    // b = torch.tensor([0.5, -1.0, 0.25, 2.0])
    // F.conv2d(x, w, b, stride=2, padding=1, groups=2)
    // (all values are small multiples of 1/4, so every sum is exact in f32 and f64)
    let g = single(conv_op(4, 4, [3, 3], 2, Pad::all(1), 2, true), Shape::nchw(4, 5, 5));
    let mut w = Weights::new();
    w.insert("conv.weight", t(&[4, 2, 3, 3], ramp(72, |i| ((i * 3) % 5) as f32 * 0.5 - 1.0)));
    w.insert("conv.bias", t(&[4], vec![0.5, -1.0, 0.25, 2.0]));
    let out = run(&g, &w, &[&ramp(100, |i| (i % 7) as f32 - 3.0)]).unwrap();
    assert_eq!(out[0].shape, Shape::nchw(4, 3, 3));
    #[rustfmt::skip]
    let expected = [
        5.0, 1.0, -1.0, -3.5, -8.0, 4.0, 2.5, 2.5, -4.0,
        -2.5, -0.5, 3.5, -6.0, 14.5, -1.5, -3.0, -10.5, -5.0,
        2.75, 7.75, -0.25, -9.25, -9.75, -0.25, 3.75, 10.25, -3.25,
        5.5, 5.5, 7.0, -7.5, 5.0, 3.5, 4.5, -3.5, -1.5,
    ];
    assert_eq!(out[0].data, expected);
}

#[test]
fn conv_with_a_1x3_kernel_and_width_padding() {
    // x = torch.arange(12.).reshape(1,1,3,4); w = torch.tensor([1., -1., 2., 0.5, 0., -2.]).reshape(2,1,1,3)
    // F.conv2d(x, w, padding=(0,1))
    let g = single(conv_op(1, 2, [1, 3], 1, Pad::hw(0, 1), 1, false), Shape::nchw(1, 3, 4));
    let mut w = Weights::new();
    w.insert("conv.weight", t(&[2, 1, 1, 3], vec![1.0, -1.0, 2.0, 0.5, 0.0, -2.0]));
    #[rustfmt::skip]
    let expected = [
        2.0, 3.0, 5.0, -1.0, 6.0, 11.0, 13.0, -1.0, 10.0, 19.0, 21.0, -1.0,
        -2.0, -4.0, -5.5, 1.0, -10.0, -10.0, -11.5, 3.0, -18.0, -16.0, -17.5, 5.0,
    ];
    assert_eq!(run1(&g, &w, &ramp(12, |i| i as f32)), expected);
}

#[test]
fn conv_with_padding_that_differs_per_side() {
    // x = torch.arange(12.).reshape(1,1,3,4); w = torch.tensor([1., 2., 3., 4.]).reshape(1,1,2,2)
    // F.conv2d(F.pad(x, (1, 0, 0, 1)), w, stride=2)     # left 1, right 0, top 0, bottom 1
    let pad = Pad { top: 0, bottom: 1, left: 1, right: 0 };
    let g = single(conv_op(1, 1, [2, 2], 2, pad, 1, false), Shape::nchw(1, 3, 4));
    let mut w = Weights::new();
    w.insert("conv.weight", t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]));
    assert_eq!(run1(&g, &w, &ramp(12, |i| i as f32)), [16.0, 44.0, 16.0, 29.0]);
}

#[test]
fn max_pool_in_ceil_mode_clips_the_last_window() {
    // x = torch.tensor([float((i * 7) % 11) for i in range(36)]).reshape(1,1,6,6)
    // F.max_pool2d(x, 3, 2, ceil_mode=True)             # 3x3 (floor mode: 2x2)
    let g = single(pool_op(PoolKind::Max, 3, 2, Pad::default(), true, true), Shape::nchw(1, 6, 6));
    let y = run(&g, &Weights::new(), &[&ramp(36, |i| ((i * 7) % 11) as f32)]).unwrap();
    assert_eq!(y[0].shape, Shape::nchw(1, 3, 3));
    assert_eq!(y[0].data, [10.0, 10.0, 9.0, 10.0, 10.0, 9.0, 10.0, 9.0, 9.0]);
}

#[test]
fn max_pool_padding_never_wins() {
    // F.max_pool2d(-1.0 - torch.arange(16.).reshape(1,1,4,4), 3, 2, padding=1)
    let g = single(pool_op(PoolKind::Max, 3, 2, Pad::all(1), false, true), Shape::nchw(1, 4, 4));
    assert_eq!(run1(&g, &Weights::new(), &ramp(16, |i| -1.0 - i as f32)), [-1.0, -2.0, -5.0, -6.0]);
}

#[test]
fn nan_propagates_through_max_pool_and_relu() {
    // torch.relu(torch.tensor(float('nan'))) and F.max_pool2d over a NaN are NaN.
    let g = single(pool_op(PoolKind::Max, 2, 2, Pad::default(), false, true), Shape::nchw(1, 2, 2));
    assert!(run1(&g, &Weights::new(), &[1.0, f32::NAN, 3.0, 2.0])[0].is_nan());
    let g = single(Op::Relu, Shape::flat(3));
    let y = run1(&g, &Weights::new(), &[-1.0, f32::NAN, 2.0]);
    assert!(y[0] == 0.0 && y[1].is_nan() && y[2] == 2.0);
}

#[test]
fn avg_pool_counts_padding_only_when_asked() {
    // x = torch.arange(16.).reshape(1,1,4,4)
    // F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=True / False)
    let x = ramp(16, |i| i as f32);
    let incl = single(pool_op(PoolKind::Avg, 3, 2, Pad::all(1), false, true), Shape::nchw(1, 4, 4));
    close(&run1(&incl, &Weights::new(), &x), &[1.1111111640930176, 2.6666667461395264, 5.666666507720947, 10.0], 1e-7);
    let excl = single(pool_op(PoolKind::Avg, 3, 2, Pad::all(1), false, false), Shape::nchw(1, 4, 4));
    assert_eq!(run1(&excl, &Weights::new(), &x), [2.5, 4.0, 8.5, 10.0]);
}

#[test]
fn avg_pool_in_ceil_mode_divides_by_the_window_clipped_to_the_padded_input() {
    // F.avg_pool2d(torch.arange(36.).reshape(1,1,6,6), 3, 2, padding=1, ceil_mode=True,
    //              count_include_pad=True)
    // The last window (rows 5..8 of the input) is clipped to row 7 = 6 + padding: it
    // divides 35 by 2x2, not by 3x3 (the full window) nor 1x1 (the real elements).
    let g = single(pool_op(PoolKind::Avg, 3, 2, Pad::all(1), true, true), Shape::nchw(1, 6, 6));
    #[rustfmt::skip]
    let expected = [
        1.5555555820465088, 3.3333332538604736, 4.666666507720947, 2.6666667461395264,
        8.333333015441895, 14.0, 16.0, 8.5,
        16.33333396911621, 26.0, 28.0, 14.5,
        10.166666984558105, 16.0, 17.0, 8.75,
    ];
    close(&run1(&g, &Weights::new(), &ramp(36, |i| i as f32)), &expected, 1e-7);
    // F.avg_pool2d(torch.arange(25.).reshape(1,1,5,5), 2, 2, ceil_mode=True,
    //              count_include_pad=True) == the same with False: no padding to count.
    let g = single(pool_op(PoolKind::Avg, 2, 2, Pad::default(), true, true), Shape::nchw(1, 5, 5));
    let expected = [3.0, 5.0, 6.5, 13.0, 15.0, 16.5, 20.5, 22.5, 24.0];
    assert_eq!(run1(&g, &Weights::new(), &ramp(25, |i| i as f32)), expected);
}

#[test]
fn avg_pool_with_padding_after_only() {
    // TensorFlow SAME on 3x3 with a 2x2 window, stride 2: one padding row below and one
    // column to the right. By hand, on x = 0..9 (rows [0 1 2] [3 4 5] [6 7 8]):
    //   window (0,0): 0+1+3+4 = 8 over 4 real elements
    //   window (0,1): 2+5 = 7, 2 real elements, the window is 2x2 within the padded input
    //   window (1,0): 6+7 = 13; window (1,1): 8, 1 real element
    let pad = Pad { top: 0, bottom: 1, left: 0, right: 1 };
    let x = ramp(9, |i| i as f32);
    let incl = single(pool_op(PoolKind::Avg, 2, 2, pad, false, true), Shape::nchw(1, 3, 3));
    assert_eq!(run1(&incl, &Weights::new(), &x), [2.0, 1.75, 3.25, 2.0]);
    let excl = single(pool_op(PoolKind::Avg, 2, 2, pad, false, false), Shape::nchw(1, 3, 3));
    assert_eq!(run1(&excl, &Weights::new(), &x), [2.0, 3.5, 6.5, 8.0]);
}

#[test]
fn lrn_windows_are_centred_and_zero_padded() {
    // x = torch.tensor([float(i % 5 - 2) * 0.75 + 0.1 * i for i in range(10)]).reshape(1,5,1,2)
    // torch.nn.LocalResponseNorm(size, alpha=0.3, beta=0.75, k=2.0)(x) for size 3 and 4
    let x = ramp(10, |i| ((i % 5) as f32 - 2.0) * 0.75 + 0.1 * i as f32);
    let lrn = |size| Op::Lrn(Lrn { size, alpha: 0.3, beta: 0.75, k: 2.0 });
    #[rustfmt::skip]
    let size3 = [
        -0.8222591280937195, -0.3657682538032532, 0.09796144813299179, 0.5710717439651489, 0.9955670237541199,
        -0.5426587462425232, -0.07318516820669174, 0.33004501461982727, 0.8458285331726074, 1.1637623310089111,
    ];
    #[rustfmt::skip]
    let size4 = [
        -0.8384629487991333, -0.3707036077976227, 0.10236560553312302, 0.5833768248558044, 0.9719696640968323,
        -0.5487036108970642, -0.07646623998880386, 0.3392913043498993, 0.7908758521080017, 1.1915313005447388,
    ];
    close(&run1(&single(lrn(3), Shape::nchw(5, 1, 2)), &Weights::new(), &x), &size3, 1e-6);
    close(&run1(&single(lrn(4), Shape::nchw(5, 1, 2)), &Weights::new(), &x), &size4, 1e-6);
}

#[test]
fn batch_norm_adds_eps_to_the_variance_on_maps_and_vectors() {
    // x = torch.tensor([i * 0.25 - 1.0 for i in range(12)]).reshape(1,2,2,3)
    // F.batch_norm(x, mean=[0.1, -0.2], var=[0.001, 0.5], weight=[1.1, 0.9],
    //              bias=[-0.05, 0.05], training=False, eps=1e-3), and on x[:, :, 0, 0]
    let mut w = Weights::new();
    w.insert("bn.weight", t(&[2], vec![1.1, 0.9]));
    w.insert("bn.bias", t(&[2], vec![-0.05, 0.05]));
    w.insert("bn.running_mean", t(&[2], vec![0.1, -0.2]));
    w.insert("bn.running_var", t(&[2], vec![0.001, 0.5]));
    let bn = || Op::BatchNorm(BatchNorm { channels: 2, eps: 1e-3, key: "bn".into() });
    let x = ramp(12, |i| i as f32 * 0.25 - 1.0);
    #[rustfmt::skip]
    let expected = [
        -27.106422424316406, -20.95723533630371, -14.808049201965332, -8.658862113952637,
        -2.5096747875213623, 3.639512300491333, 0.9400649070739746, 1.2579452991485596,
        1.575825572013855, 1.89370596408844, 2.2115862369537354, 2.5294666290283203,
    ];
    close(&run1(&single(bn(), Shape::nchw(2, 2, 3)), &w, &x), &expected, 1e-6);
    close(&run1(&single(bn(), Shape::flat(2)), &w, &[x[0], x[6]]), &[expected[0], expected[6]], 1e-6);
}

#[test]
fn l2_norm_divides_by_the_norm_or_eps() {
    // F.normalize(torch.tensor([[3., -4., 0., 12.]]), dim=1, eps=1e-12)
    let g = single(Op::L2Norm { eps: 1e-12 }, Shape::flat(4));
    let expected = [0.23076923191547394, -0.3076923191547394, 0.0, 0.9230769276618958];
    close(&run1(&g, &Weights::new(), &[3.0, -4.0, 0.0, 12.0]), &expected, 1e-7);
    // F.normalize(torch.tensor([[3e-13, -4e-13]]), dim=1, eps=1e-12): the norm 5e-13 < eps
    let g = single(Op::L2Norm { eps: 1e-12 }, Shape::flat(2));
    close(&run1(&g, &Weights::new(), &[3e-13, -4e-13]), &[0.29999998211860657, -0.4000000059604645], 1e-6);
}

#[test]
fn softmax_is_stable_for_large_logits() {
    // F.softmax(torch.tensor([[1., 2., 3., -1.]]), dim=1), and the same plus 1000
    let g = single(Op::Softmax, Shape::flat(4));
    let expected = [0.08894681185483932, 0.2417825162410736, 0.6572329998016357, 0.012037642300128937];
    close(&run1(&g, &Weights::new(), &[1.0, 2.0, 3.0, -1.0]), &expected, 1e-6);
    close(&run1(&g, &Weights::new(), &[1001.0, 1002.0, 1003.0, 999.0]), &expected, 1e-6);
}

/// Three inputs `a`, `b`, `c`; outputs `sum = a + 0.5 * c`, `cat = concat(b, a)` and `a`.
#[test]
fn concat_in_operand_order_add_with_scale_and_several_outputs() {
    let mut g = Graph::new("two");
    let a = g.add(Op::Input, Shape::nchw(1, 2, 2), Default::default(), "a", &[]);
    let b = g.add(Op::Input, Shape::nchw(2, 2, 2), Default::default(), "b", &[]);
    let c = g.add(Op::Input, Shape::nchw(1, 2, 2), Default::default(), "c", &[]);
    g.inputs = vec![a, b, c];
    let cat = add(&mut g, Op::Concat, &[b, a]);
    let sum = add(&mut g, Op::Add { scale: 0.5 }, &[a, c]);
    g.outputs = vec![("sum".into(), sum), ("cat".into(), cat), ("a".into(), a)];
    let xa = [1.0, 2.0, 3.0, 4.0];
    let xb = ramp(8, |i| 5.0 + i as f32);
    let xc = [10.0, -2.0, 0.5, 0.0];
    let out = run(&g, &Weights::new(), &[&xa, &xb, &xc]).unwrap();
    let names: Vec<&str> = out.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["sum", "cat", "a"]);
    assert_eq!(out[0].data, [6.0, 1.0, 3.25, 4.0]);
    assert_eq!(out[1].shape, Shape::nchw(3, 2, 2));
    assert_eq!(out[1].data, [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(out[2].data, xa);
}

#[test]
fn global_pool_flatten_linear_relu_dropout() {
    // By hand: channel means 2.5 and -3; W = [[1, 0], [0, 1], [1, 1]], b = [0, 0.5, -1]
    // gives [2.5, -2.5, -1.5]; relu gives [2.5, 0, 0].
    let (mut g, x) = with_input(Shape::nchw(2, 2, 2));
    let p = add(&mut g, Op::GlobalAvgPool, &[x]);
    let f = add(&mut g, Op::Flatten, &[p]);
    let l = add(
        &mut g,
        Op::Linear(Linear { in_features: 2, out_features: 3, key: "fc".into(), bias: true, relu: false }),
        &[f],
    );
    let r = add(&mut g, Op::Relu, &[l]);
    let d = add(&mut g, Op::Dropout { p: 0.5 }, &[r]);
    g.outputs = vec![("logits".into(), l), ("y".into(), d)];
    let mut w = Weights::new();
    w.insert("fc.weight", t(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]));
    w.insert("fc.bias", t(&[3], vec![0.0, 0.5, -1.0]));
    let out = run(&g, &w, &[&[1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -6.0]]).unwrap();
    assert_eq!(out[0].shape, Shape::flat(3));
    assert_eq!(out[0].data, [2.5, -2.5, -1.5]);
    assert_eq!(out[1].data, [2.5, 0.0, 0.0]);
}
